ALTER TABLE "runners" DROP CONSTRAINT "runners_name_unique";--> statement-breakpoint
CREATE UNIQUE INDEX "runners_active_name" ON "runners" USING btree ("name") WHERE "runners"."revoked_at" is null;