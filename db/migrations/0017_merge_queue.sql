ALTER TABLE "pull_requests" ADD COLUMN "queued_head_sha" text;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "queued_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "queue_plan" jsonb;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "dequeued_head_sha" text;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "dequeue_reason" text;