import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { Ajv, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { describeAjvError } from "./openapi-validator.ts";

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

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

let ajv: Ajv | undefined;
let webhooks: WebhooksDocument["webhooks"] | undefined;
const validators = new Map<string, ValidateFunction | null>();

function load(): { ajv: Ajv; webhooks: WebhooksDocument["webhooks"] } {
  if (!ajv || !webhooks) {
    const document = JSON.parse(
      readFileSync(
        require.resolve("@octokit/openapi-webhooks/generated/api.github.com.json"),
        "utf8",
      ),
    ) as WebhooksDocument;
    ajv = new Ajv({ strict: false, allErrors: true, logger: false, validateSchema: false });
    addFormats(ajv);
    // GitHub's own payloads carry App bot addresses such as
    // `123+conveyor[bot]@users.noreply.github.com`, which ajv-formats' strict "email" rejects; the
    // published schema's format is looser than its regex, so check the shape GitHub really sends.
    ajv.addFormat("email", /^[^\s@]+@[^\s@]+\.[^\s@]+$/);
    // Registered as one schema so the `#/components/schemas/...` references resolve inside it.
    ajv.addSchema({ $id: DOCUMENT_ID, components: document.components });
    webhooks = document.webhooks;
  }
  return { ajv, webhooks };
}

/**
 * Validates webhook payloads against `@octokit/openapi-webhooks` (GitHub's published webhook
 * schemas), keyed like `issues-labeled` or `status`. Compiled validators are cached per process.
 */
export function createWebhookPayloadValidator(): WebhookPayloadValidator {
  const validatorFor = (key: string) => {
    if (!validators.has(key)) {
      const loaded = load();
      const ref =
        loaded.webhooks[key]?.post?.requestBody?.content?.["application/json"]?.schema?.$ref;
      validators.set(key, ref ? loaded.ajv.compile({ $ref: `${DOCUMENT_ID}${ref}` }) : null);
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
