ALTER TABLE "repositories" ADD COLUMN "head_sha" text;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "permissions_changed_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "status_synced_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "status_digest" text;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "status_position" integer;