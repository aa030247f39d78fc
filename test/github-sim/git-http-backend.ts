import { spawn } from "node:child_process";
import { isolatedGitEnv } from "./run-git.ts";

export interface GitHttpBackendRequest {
  /** Directory holding `<owner>/<repo>.git`. */
  projectRoot: string;
  /** `/<owner>/<repo>.git/info/refs`, `/…/git-upload-pack` or `/…/git-receive-pack`. */
  pathInfo: string;
  method: string;
  queryString: string;
  headers: Headers;
  body: Buffer;
  /** Who pushes; `git http-backend` enables receive-pack only for an authenticated user. */
  remoteUser: string | undefined;
}

export interface GitHttpBackendResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Splits CGI output into its header block and the body. */
function parseCgiOutput(output: Buffer): GitHttpBackendResponse {
  let split = output.indexOf("\r\n\r\n");
  let separator = 4;
  if (split === -1) {
    split = output.indexOf("\n\n");
    separator = 2;
  }
  if (split === -1) return { status: 502, headers: {}, body: output };
  const headers: Record<string, string> = {};
  let status = 200;
  for (const line of output.subarray(0, split).toString("latin1").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon === -1) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === "status") status = Number.parseInt(value, 10);
    else headers[name] = value;
  }
  return { status, headers, body: output.subarray(split + separator) };
}

/**
 * Serves one smart-HTTP git request by running `git http-backend` as a CGI child process (argv,
 * no shell), so clones and fetches behave exactly like real git over HTTP.
 */
export function runGitHttpBackend(request: GitHttpBackendRequest): Promise<GitHttpBackendResponse> {
  const env: Record<string, string> = {
    GIT_PROJECT_ROOT: request.projectRoot,
    GIT_HTTP_EXPORT_ALL: "1",
    PATH_INFO: request.pathInfo,
    REQUEST_METHOD: request.method,
    QUERY_STRING: request.queryString,
    REMOTE_ADDR: "127.0.0.1",
    CONTENT_LENGTH: String(request.body.length),
  };
  const contentType = request.headers.get("content-type");
  if (contentType) env.CONTENT_TYPE = contentType;
  const encoding = request.headers.get("content-encoding");
  if (encoding) env.HTTP_CONTENT_ENCODING = encoding;
  const protocol = request.headers.get("git-protocol");
  if (protocol) env.HTTP_GIT_PROTOCOL = protocol;
  if (request.remoteUser) env.REMOTE_USER = request.remoteUser;

  return new Promise((resolve, reject) => {
    const child = spawn("git", ["http-backend"], {
      env: isolatedGitEnv(env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const output = Buffer.concat(out);
      if (output.length === 0) {
        reject(
          new Error(
            `git http-backend exited with ${code}: ${Buffer.concat(err).toString().trim()}`,
          ),
        );
        return;
      }
      resolve(parseCgiOutput(output));
    });
    child.stdin.on("error", () => {});
    child.stdin.end(request.body);
  });
}
