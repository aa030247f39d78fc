ALTER TABLE "webhook_deliveries" ADD COLUMN "intent" jsonb;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD COLUMN "attempts" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD COLUMN "lease_holder" text;--> statement-breakpoint
ALTER TABLE "webhook_deliveries" ADD COLUMN "lease_until" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "webhook_deliveries_owed_idx" ON "webhook_deliveries" USING btree ("received_at") WHERE "webhook_deliveries"."intent" is not null;