ALTER TABLE "attempts" ADD COLUMN "fail_reason" text;--> statement-breakpoint
ALTER TABLE "attempts" ADD COLUMN "duration_ms" bigint;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "daily_budget_usd" double precision;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "budget_set_usd" double precision;--> statement-breakpoint
ALTER TABLE "repositories" ADD COLUMN "budget_set_on" date;--> statement-breakpoint
CREATE INDEX "attempts_finished_idx" ON "attempts" USING btree ("finished_at");