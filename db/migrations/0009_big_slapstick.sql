ALTER TABLE "repositories" ADD COLUMN "head_sha" text;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "permissions_changed_at" timestamp with time zone;