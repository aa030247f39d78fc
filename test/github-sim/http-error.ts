/** One entry of a GitHub 422 `errors` array. */
export interface GitHubFieldError {
  resource: string;
  field?: string;
  code: string;
  message?: string;
}

const DOCS = "https://docs.github.com/rest";

/**
 * An error answer in GitHub's shape (`{message, documentation_url, status, errors?}`); route
 * handlers throw it and the router turns it into the response.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly errors: GitHubFieldError[] | undefined;
  readonly headers: Record<string, string>;
  readonly documentationUrl: string;

  constructor(
    status: number,
    message: string,
    options: {
      errors?: GitHubFieldError[];
      headers?: Record<string, string>;
      documentationUrl?: string;
    } = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.errors = options.errors;
    this.headers = options.headers ?? {};
    this.documentationUrl = options.documentationUrl ?? DOCS;
  }

  toJSON(): Record<string, unknown> {
    const body: Record<string, unknown> = {
      message: this.message,
      documentation_url: this.documentationUrl,
    };
    if (this.errors) body.errors = this.errors;
    body.status = String(this.status);
    return body;
  }
}

export function notFound(): HttpError {
  return new HttpError(404, "Not Found");
}

/** 422 "Validation Failed" with field errors, as GitHub answers a well-formed but wrong request. */
export function validationFailed(
  errors: GitHubFieldError[],
  message = "Validation Failed",
): HttpError {
  return new HttpError(422, message, { errors });
}
