ALTER TABLE "runners" ADD COLUMN "repos" text[] DEFAULT '{}'::text[] NOT NULL;--> statement-breakpoint
ALTER TABLE "runners" ADD COLUMN "one_time" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "runners" ADD COLUMN "expires_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "runners" ADD COLUMN "used_at" timestamp with time zone;