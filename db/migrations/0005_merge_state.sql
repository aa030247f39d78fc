ALTER TABLE "pull_requests" ADD COLUMN "head_written_at" timestamp with time zone DEFAULT now() NOT NULL;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "safety_check_id" bigint;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "safety_check_sha" text;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "verdict_digest" text;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "merge_conflicts" integer DEFAULT 0 NOT NULL;