CREATE TABLE "merge_watches" (
	"watch_id" bigserial PRIMARY KEY NOT NULL,
	"task_id" uuid NOT NULL,
	"repository_id" bigint NOT NULL,
	"installation_id" bigint NOT NULL,
	"issue_number" integer NOT NULL,
	"pr_number" integer NOT NULL,
	"pr_title" text DEFAULT '' NOT NULL,
	"base_ref" text NOT NULL,
	"merge_sha" text NOT NULL,
	"parent_sha" text,
	"checks" text[] DEFAULT '{}'::text[] NOT NULL,
	"tier" integer NOT NULL,
	"revert_mode" text NOT NULL,
	"state" text DEFAULT 'watching' NOT NULL,
	"rerequested" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"rerequested_at" timestamp with time zone,
	"failing" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"revert_pr_number" integer,
	"revert_branch" text,
	"requeued_task_id" uuid,
	"note" text DEFAULT '' NOT NULL,
	"deadline_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "conflict_retries" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "merge_watches" ADD CONSTRAINT "merge_watches_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "merge_watches" ADD CONSTRAINT "merge_watches_repository_id_repositories_repository_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repositories"("repository_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "merge_watches_merge_idx" ON "merge_watches" USING btree ("repository_id","merge_sha");--> statement-breakpoint
CREATE INDEX "merge_watches_open_idx" ON "merge_watches" USING btree ("watch_id") WHERE "merge_watches"."finished_at" is null;--> statement-breakpoint
CREATE INDEX "merge_watches_task_idx" ON "merge_watches" USING btree ("task_id");