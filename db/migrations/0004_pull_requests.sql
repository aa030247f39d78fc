CREATE TABLE "pull_requests" (
	"repository_id" bigint NOT NULL,
	"pr_number" integer NOT NULL,
	"task_id" uuid NOT NULL,
	"branch" text NOT NULL,
	"head_sha" text NOT NULL,
	"url" text NOT NULL,
	"state" text DEFAULT 'open' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "pull_requests_repository_id_pr_number_pk" PRIMARY KEY("repository_id","pr_number")
);
--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "base_sha" text;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "feedback" text;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "ci_fixes" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "review_fixes" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "published_generation" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD CONSTRAINT "pull_requests_repository_id_repositories_repository_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repositories"("repository_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pull_requests" ADD CONSTRAINT "pull_requests_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "pull_requests_task_idx" ON "pull_requests" USING btree ("task_id");--> statement-breakpoint
CREATE INDEX "pull_requests_head_idx" ON "pull_requests" USING btree ("repository_id","head_sha");