CREATE TABLE "candidates" (
	"task_id" uuid NOT NULL,
	"round" integer NOT NULL,
	"k" integer NOT NULL,
	"candidate_task_id" uuid NOT NULL,
	"adapter" text,
	"branch" text NOT NULL,
	"head_sha" text,
	"head_written_at" timestamp with time zone,
	"verification_passed" boolean,
	"tier" integer,
	"checks" text,
	"changed_lines" integer,
	"cost_usd" double precision,
	"failure" text,
	"rank" integer,
	"picked" boolean DEFAULT false NOT NULL,
	"decided_at" timestamp with time zone,
	"branch_deleted_at" timestamp with time zone,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "candidates_task_id_round_k_pk" PRIMARY KEY("task_id","round","k")
);
--> statement-breakpoint
DROP INDEX "tasks_one_active_per_issue";--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "best_of" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "best_of_adapters" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "parent_task_id" uuid;--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "candidate" integer;--> statement-breakpoint
ALTER TABLE "candidates" ADD CONSTRAINT "candidates_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "candidates" ADD CONSTRAINT "candidates_candidate_task_id_tasks_task_id_fk" FOREIGN KEY ("candidate_task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "candidates_candidate_task_idx" ON "candidates" USING btree ("candidate_task_id");--> statement-breakpoint
CREATE INDEX "candidates_open_idx" ON "candidates" USING btree ("task_id") WHERE "candidates"."decided_at" is null or ("candidates"."head_sha" is not null and "candidates"."branch_deleted_at" is null);--> statement-breakpoint
CREATE INDEX "tasks_parent_idx" ON "tasks" USING btree ("parent_task_id") WHERE "tasks"."parent_task_id" is not null;--> statement-breakpoint
CREATE UNIQUE INDEX "tasks_one_active_per_issue" ON "tasks" USING btree ("repository_id","issue_number") WHERE "tasks"."state" not in ('merged', 'cancelled') and "tasks"."parent_task_id" is null;