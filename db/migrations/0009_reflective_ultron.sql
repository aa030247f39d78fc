CREATE TABLE "attempt_logs" (
	"line_id" bigserial PRIMARY KEY NOT NULL,
	"task_id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"line" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "attempts" (
	"task_id" uuid NOT NULL,
	"generation" integer NOT NULL,
	"runner_id" uuid,
	"adapter" text,
	"model" text,
	"stage" text,
	"tool" text,
	"turns" integer,
	"tokens" bigint,
	"input_tokens" bigint,
	"output_tokens" bigint,
	"cache_read_tokens" bigint,
	"cache_write_tokens" bigint,
	"cost_usd" double precision,
	"outcome" text,
	"progress_shown_at" timestamp with time zone,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "attempts_task_id_generation_pk" PRIMARY KEY("task_id","generation")
);
--> statement-breakpoint
ALTER TABLE "attempt_logs" ADD CONSTRAINT "attempt_logs_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "attempts" ADD CONSTRAINT "attempts_task_id_tasks_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."tasks"("task_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "attempt_logs_attempt_idx" ON "attempt_logs" USING btree ("task_id","generation","line_id");