CREATE TABLE "change_sets" (
	"task_id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"runner_id" uuid NOT NULL,
	"digest" text NOT NULL,
	"base_sha" text NOT NULL,
	"message" text NOT NULL,
	"files" jsonb NOT NULL,
	"size_bytes" integer NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "change_sets_task_id_generation_pk" PRIMARY KEY("task_id","generation")
);
--> statement-breakpoint
ALTER TABLE "tasks" ADD COLUMN "result" jsonb;--> statement-breakpoint
ALTER TABLE "change_sets" ADD CONSTRAINT "change_sets_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;