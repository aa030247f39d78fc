CREATE TABLE "issue_notices" (
	"notice_id" bigserial PRIMARY KEY NOT NULL,
	"dedupe_key" text NOT NULL,
	"repository_id" bigint NOT NULL,
	"installation_id" bigint NOT NULL,
	"issue_number" integer NOT NULL,
	"body" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_until" timestamp with time zone,
	"posted_at" timestamp with time zone,
	"comment_id" bigint,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	CONSTRAINT "issue_notices_dedupe_key_unique" UNIQUE("dedupe_key")
);
--> statement-breakpoint
CREATE TABLE "leases" (
	"name" text PRIMARY KEY NOT NULL,
	"holder" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "status_version" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "status_synced_version" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "status_lease_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "reacted_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "issue_notices" ADD CONSTRAINT "issue_notices_repository_id_repositories_repository_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repositories"("repository_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "issue_notices_pending_idx" ON "issue_notices" USING btree ("notice_id") WHERE "issue_notices"."posted_at" is null;--> statement-breakpoint
CREATE INDEX "tasks_status_dirty_idx" ON "tasks" USING btree ("task_id") WHERE "tasks"."status_version" > "tasks"."status_synced_version";