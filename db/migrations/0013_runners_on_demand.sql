CREATE TABLE "runner_dispatches" (
	"dispatch_id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"repository_id" bigint NOT NULL,
	"task_id" uuid NOT NULL,
	"runner_id" uuid NOT NULL,
	"workflow" text NOT NULL,
	"state" text DEFAULT 'dispatched' NOT NULL,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"settled_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "runners" ADD COLUMN "repos" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "runners" ADD COLUMN "one_time" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "runners" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "runners" ADD COLUMN "used_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "runner_dispatches" ADD CONSTRAINT "runner_dispatches_repository_id_repositories_repository_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repositories"("repository_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "runner_dispatches" ADD CONSTRAINT "runner_dispatches_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "runner_dispatches" ADD CONSTRAINT "runner_dispatches_runner_id_runners_runner_id_fk" FOREIGN KEY ("runner_id") REFERENCES "public"."runners"("runner_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "runner_dispatches_open_idx" ON "runner_dispatches" USING btree ("repository_id") WHERE "runner_dispatches"."state" = 'dispatched';--> statement-breakpoint
CREATE INDEX "runner_dispatches_task_idx" ON "runner_dispatches" USING btree ("task_id");