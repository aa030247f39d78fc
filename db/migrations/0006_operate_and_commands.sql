CREATE TABLE "alerts" (
	"alert_id" bigserial PRIMARY KEY NOT NULL,
	"rule" text NOT NULL,
	"severity" text NOT NULL,
	"status" text DEFAULT 'firing' NOT NULL,
	"message" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"first_fired_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_fired_at" timestamp with time zone DEFAULT now() NOT NULL,
	"fire_count" integer DEFAULT 1 NOT NULL,
	"cleared_at" timestamp with time zone,
	"acknowledged_at" timestamp with time zone,
	"acknowledged_by" text,
	"github_repository_id" bigint,
	"github_issue_number" integer
);
--> statement-breakpoint
CREATE TABLE "api_tokens" (
	"token_id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"name" text NOT NULL,
	"role" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
CREATE TABLE "approvals" (
	"approval_id" bigserial PRIMARY KEY NOT NULL,
	"repository_id" bigint NOT NULL,
	"pr_number" integer NOT NULL,
	"sha" text NOT NULL,
	"login" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "commands" (
	"source" text NOT NULL,
	"source_id" bigint NOT NULL,
	"repository_id" bigint NOT NULL,
	"installation_id" bigint NOT NULL,
	"number" integer NOT NULL,
	"is_pull_request" boolean NOT NULL,
	"actor" text NOT NULL,
	"results" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"reaction" text,
	"reply" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"feedback_lease_until" timestamp with time zone,
	"feedback_posted_at" timestamp with time zone,
	"feedback_attempts" integer DEFAULT 0 NOT NULL,
	"last_error" text,
	CONSTRAINT "commands_source_source_id_pk" PRIMARY KEY("source","source_id")
);
--> statement-breakpoint
CREATE TABLE "dashboard_sessions" (
	"session_hash" text PRIMARY KEY NOT NULL,
	"token_id" uuid,
	"role" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "error_events" (
	"error_id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"source" text NOT NULL,
	"message" text NOT NULL,
	"details" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "metric_samples" (
	"metric" text NOT NULL,
	"labels" text DEFAULT '' NOT NULL,
	"sampled_at" timestamp with time zone DEFAULT now() NOT NULL,
	"value" double precision NOT NULL,
	CONSTRAINT "metric_samples_metric_labels_sampled_at_pk" PRIMARY KEY("metric","labels","sampled_at")
);
--> statement-breakpoint
ALTER TABLE "commands" ADD CONSTRAINT "commands_repository_id_repositories_repository_id_fk" FOREIGN KEY ("repository_id") REFERENCES "public"."repositories"("repository_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "dashboard_sessions" ADD CONSTRAINT "dashboard_sessions_token_id_api_tokens_token_id_fk" FOREIGN KEY ("token_id") REFERENCES "public"."api_tokens"("token_id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "alerts_one_firing_per_rule" ON "alerts" USING btree ("rule") WHERE "alerts"."status" = 'firing';--> statement-breakpoint
CREATE INDEX "alerts_fired_idx" ON "alerts" USING btree ("last_fired_at");--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_active_name" ON "api_tokens" USING btree ("name") WHERE "api_tokens"."revoked_at" is null;--> statement-breakpoint
CREATE INDEX "approvals_pr_idx" ON "approvals" USING btree ("repository_id","pr_number");--> statement-breakpoint
CREATE UNIQUE INDEX "approvals_one_standing" ON "approvals" USING btree ("repository_id","pr_number","sha","login") WHERE "approvals"."revoked_at" is null;--> statement-breakpoint
CREATE INDEX "commands_feedback_pending_idx" ON "commands" USING btree ("created_at") WHERE "commands"."feedback_posted_at" is null;--> statement-breakpoint
CREATE INDEX "commands_actor_idx" ON "commands" USING btree ("actor","created_at");--> statement-breakpoint
CREATE INDEX "dashboard_sessions_expires_idx" ON "dashboard_sessions" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "error_events_at_idx" ON "error_events" USING btree ("at");