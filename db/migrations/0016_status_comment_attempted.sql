ALTER TABLE "tasks" ADD COLUMN "status_comment_attempted_at" timestamp with time zone;--> statement-breakpoint
-- custom: begin
-- Tasks that owe their first status comment from before this column existed may have one already
-- (a creation whose id was never recorded): they look for it once, as every task did before.
UPDATE "tasks" SET "status_comment_attempted_at" = now()
WHERE "status_comment_id" IS NULL AND "finished_at" IS NULL;
-- custom: end
