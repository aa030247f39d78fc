CREATE TABLE "attempts" (
	"task_id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"runner_id" uuid,
	"outcome" text NOT NULL,
	"fail_reason" text,
	"adapter" text,
	"model" text,
	"cost_usd" double precision,
	"input_tokens" bigint,
	"output_tokens" bigint,
	"cache_read_tokens" bigint,
	"cache_creation_tokens" bigint,
	"tokens" bigint,
	"turns" integer,
	"duration_ms" bigint,
	"finished_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "attempts_task_id_generation_pk" PRIMARY KEY("task_id","generation")
);
--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "daily_budget_usd" double precision;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "budget_set_usd" double precision;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "budget_set_on" date;--> statement-breakpoint
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "attempts_finished_idx" ON "attempts" USING btree ("finished_at");