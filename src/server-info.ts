import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";

/**
 * `<dataDir>/server.json`: where the server holding the embedded database can be reached. The CLI
 * reads it when the data directory is locked, and asks that server's admin API instead of opening
 * the database (which would corrupt it).
 */
export const ServerInfo = z.object({
  pid: z.number().int().positive(),
  url: z.url({ protocol: /^https?$/ }),
});
export type ServerInfo = z.infer<typeof ServerInfo>;

export function serverInfoPath(dataDir: string): string {
  return join(dataDir, "server.json");
}

/** Writes the file atomically (temporary file + rename), so a reader never sees half of it. */
export function writeServerInfo(dataDir: string, info: ServerInfo): void {
  const path = serverInfoPath(dataDir);
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(ServerInfo.parse(info))}\n`);
  renameSync(temporary, path);
}

/** The published server, or undefined when there is no file or it is not one this code wrote. */
export function readServerInfo(dataDir: string): ServerInfo | undefined {
  let text: string;
  try {
    text = readFileSync(serverInfoPath(dataDir), "utf8");
  } catch {
    return undefined;
  }
  try {
    const parsed = ServerInfo.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Removes the file if it names `pid` (by default this process), so a stopping server never removes
 * the address a newer one has published.
 */
export function removeServerInfo(dataDir: string, pid: number = process.pid): void {
  const info = readServerInfo(dataDir);
  if (info && info.pid !== pid) return;
  rmSync(serverInfoPath(dataDir), { force: true });
}
