import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { _, Ajv, type ValidateFunction } from "ajv";
import { describeAjvError } from "./openapi-validator.ts";
import { cachedJson, cachedValidator } from "./schema-cache.ts";

interface WebhooksDocument {
  webhooks: Record<
    string,
    { post?: { requestBody?: { content?: Record<string, { schema?: { $ref?: string } }> } } }
  >;
  components: { schemas: Record<string, object> };
}

export interface WebhookPayloadValidator {
  /** Problems with a payload for `event` (+ `action`); empty when it matches GitHub's schema. */
  validate(event: string, action: string | undefined, payload: unknown): string[];
}

const DOCUMENT_ID = "https://conveyor.invalid/openapi-webhooks.json";
const require = createRequire(import.meta.url);

const FORMATS = require.resolve("./webhook-formats.cjs");
const formats = require(FORMATS) as Record<string, RegExp | ((value: string) => boolean)>;

let loaded: { ajv: Ajv; webhooks: WebhooksDocument["webhooks"] } | undefined;
const validators = new Map<string, ValidateFunction | null>();

function load(): { ajv: Ajv; webhooks: WebhooksDocument["webhooks"] } {
  if (!loaded) {
    const document = JSON.parse(
      readFileSync(
        require.resolve("@octokit/openapi-webhooks/generated/api.github.com.json"),
        "utf8",
      ),
    ) as WebhooksDocument;
    // The code is kept (schema-cache.ts) and finds the same formats in webhook-formats.cjs.
    const ajv = new Ajv({
      strict: false,
      allErrors: true,
      logger: false,
      validateSchema: false,
      formats,
      code: { source: true, formats: _`require(${FORMATS})` },
    });
    // Registered as one schema so the `#/components/schemas/...` references resolve inside it.
    ajv.addSchema({ $id: DOCUMENT_ID, components: document.components });
    loaded = { ajv, webhooks: document.webhooks };
  }
  return loaded;
}

/** The `$ref` of the payload schema for a key, or undefined when GitHub publishes none. */
let refs: Record<string, string | null> | undefined;

/**
 * Validates webhook payloads against `@octokit/openapi-webhooks` (GitHub's published webhook
 * schemas), keyed like `issues-labeled` or `status`. Compiled validators are kept on disk
 * (schema-cache.ts) and read once per process.
 */
export function createWebhookPayloadValidator(): WebhookPayloadValidator {
  const validatorFor = (key: string) => {
    if (!validators.has(key)) {
      refs ??= cachedJson("webhook-refs", () =>
        Object.fromEntries(
          Object.entries(load().webhooks).map(([name, webhook]) => [
            name,
            webhook.post?.requestBody?.content?.["application/json"]?.schema?.$ref ?? null,
          ]),
        ),
      );
      const ref = refs[key];
      validators.set(
        key,
        ref
          ? cachedValidator(
              `webhook ${key}`,
              () => load().ajv,
              (ajv) => ajv.compile({ $ref: `${DOCUMENT_ID}${ref}` }),
            )
          : null,
      );
    }
    return validators.get(key) ?? undefined;
  };

  return {
    validate(event, action, payload) {
      const base = event.replaceAll("_", "-");
      const key = action ? `${base}-${action.replaceAll("_", "-")}` : base;
      const validate = validatorFor(key) ?? (action ? undefined : validatorFor(base));
      if (!validate) return [`no published schema for webhook ${key}`];
      if (validate(payload)) return [];
      return (validate.errors ?? []).map((error) => describeAjvError(error, "payload").message);
    },
  };
}
