ALTER TABLE "pull_requests" ADD COLUMN "base_ref" text;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "update_requested_from" text;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "update_base_sha" text;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "update_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "would_merge_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD COLUMN "merged_by_hand" boolean DEFAULT false NOT NULL;--> statement-breakpoint
-- Pull requests opened before the column existed were opened against their repository's default branch.
UPDATE "pull_requests" SET "base_ref" = "repositories"."default_branch" FROM "repositories" WHERE "repositories"."repository_id" = "pull_requests"."repository_id" AND "pull_requests"."base_ref" IS NULL;
