import { cpSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join, posix, relative } from "node:path";

/**
 * Reads a Dockerfile and replays its steps in a directory, for a machine without a container
 * engine: what each COPY takes from the build context (through .dockerignore) or from an earlier
 * stage, WORKDIR, ENV, and the RUN steps the caller knows how to run. Anything else in the file is
 * an error, so the replay can never silently differ from the image a real build makes.
 */

export interface Instruction {
  keyword: string;
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

/**
 * Splits a Dockerfile into instructions: comment lines dropped (also inside a continuation, as
 * Docker does), lines ending in `\` joined to the next, the keyword upper-cased.
 */
export function parseDockerfile(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split("\n").forEach((raw, index) => {
    const line = raw.replace(/\r$/, "");
    // Comment and empty lines are skipped, also inside a continued line (as Docker does).
    if (/^\s*#/.test(line) || line.trim() === "") return;
    const continued = /\\\s*$/.test(line);
    const body = continued ? line.replace(/\\\s*$/, "") : line;
    pending = pending ? { ...pending, text: pending.text + body } : { text: body, line: index + 1 };
    if (continued) return;
    const match = /^\s*(\S+)\s*(.*)$/s.exec(pending.text);
    if (match) {
      instructions.push({
        keyword: match[1]!.toUpperCase(),
        args: match[2]!.trim(),
        line: pending.line,
      });
    }
    pending = undefined;
  });
  if (pending) throw new Error(`line ${pending.line}: the file ends inside a continued line`);
  return instructions;
}

/** Splits on blanks outside quotes and removes the quotes, as Docker does for ENV and COPY. */
function words(args: string): string[] {
  const out: string[] = [];
  let current = "";
  let quote: string | undefined;
  let started = false;
  for (let i = 0; i < args.length; i++) {
    const c = args[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < args.length) current += args[++i];
      else current += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      started = true;
    } else if (/\s/.test(c)) {
      if (started) out.push(current);
      current = "";
      started = false;
    } else {
      current += c;
      started = true;
    }
  }
  if (quote) throw new Error(`unterminated quote in: ${args}`);
  if (started) out.push(current);
  return out;
}

/** The exec form (`["node", "bin/x.js"]`); the shell form is refused (it would not pass signals). */
export function execForm(args: string, where: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    throw new Error(`${where}: expected the exec form (a JSON array), got ${args}`);
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length === 0 ||
    !parsed.every((a) => typeof a === "string")
  ) {
    throw new Error(`${where}: expected a non-empty JSON array of strings, got ${args}`);
  }
  return parsed;
}

/** ENV in its `KEY=value …` form, or the old `KEY value` one. */
export function parseEnv(args: string): Record<string, string> {
  const tokens = words(args);
  if (tokens.length > 0 && !tokens[0]!.includes("=")) {
    const [key, ...rest] = args.split(/\s+/);
    return { [key!]: rest.join(" ") };
  }
  const env: Record<string, string> = {};
  for (const token of tokens) {
    const at = token.indexOf("=");
    if (at <= 0) throw new Error(`ENV: expected KEY=value, got ${token}`);
    env[token.slice(0, at)] = token.slice(at + 1);
  }
  return env;
}

export interface Healthcheck {
  options: Record<string, string>;
  command: string[];
}

export function parseHealthcheck(args: string): Healthcheck | "none" {
  if (args.trim().toUpperCase() === "NONE") return "none";
  const match = /^((?:--[a-z-]+=\S+\s+)*)CMD\s+(.*)$/is.exec(args);
  if (!match) throw new Error(`HEALTHCHECK: expected [--option=value …] CMD [...], got ${args}`);
  const options: Record<string, string> = {};
  for (const option of words(match[1]!)) {
    const [key, value] = option.slice(2).split("=", 2);
    options[key!] = value!;
  }
  return { options, command: execForm(match[2]!, "HEALTHCHECK CMD") };
}

/**
 * `.dockerignore` as Docker reads it (moby's patternmatcher): a path is left out of the build
 * context when the last pattern matching it or one of its parent directories is not a `!` one.
 * `*` and `?` stay within a path segment, `**` crosses them.
 */
export function dockerignore(text: string): (path: string) => boolean {
  const patterns = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const exclusion = line.startsWith("!");
      const cleaned = posix
        .normalize((exclusion ? line.slice(1) : line).trim())
        .replace(/^\/+/, "")
        .replace(/\/+$/, "");
      if (/[[\]\\]/.test(cleaned)) throw new Error(`.dockerignore: unsupported pattern ${line}`);
      let source = "";
      for (let i = 0; i < cleaned.length; i++) {
        const c = cleaned[i]!;
        if (c === "*" && cleaned[i + 1] === "*") {
          i++;
          if (cleaned[i + 1] === "/") {
            i++;
            source += "(?:.*/)?";
          } else {
            source += ".*";
          }
        } else if (c === "*") source += "[^/]*";
        else if (c === "?") source += "[^/]";
        else source += c.replace(/[.+^${}()|]/g, "\\$&");
      }
      return { exclusion, regex: new RegExp(`^${source}$`) };
    });
  return (path: string) => {
    const segments = path.split("/");
    const candidates = segments.map((_, i) => segments.slice(0, i + 1).join("/"));
    let ignored = false;
    for (const pattern of patterns) {
      if (pattern.exclusion !== ignored) continue;
      if (candidates.some((candidate) => pattern.regex.test(candidate))) {
        ignored = !pattern.exclusion;
      }
    }
    return ignored;
  };
}

export interface Stage {
  name: string | undefined;
  /** The image named in FROM. */
  from: string;
  /** The stage's filesystem: `/` inside the image is this directory. */
  root: string;
  workdir: string;
  env: Record<string, string>;
  user: string | undefined;
  exposed: string[];
  entrypoint: string[] | undefined;
  cmd: string[] | undefined;
  healthcheck: Healthcheck | "none" | undefined;
  /** The RUN steps in order, as written. */
  runs: string[];
}

/** Where a path inside the stage's image is on this machine. */
export function hostPath(stage: Stage, path: string): string {
  return join(stage.root, posix.resolve(stage.workdir, path));
}

export interface RunStep {
  command: string;
  stage: Stage;
  /** The step's working directory on this machine. */
  cwd: string;
  line: number;
}

/**
 * Replays every stage of `dockerfile` under `into` (one directory per stage) and returns the
 * stages, the image's being the last. `run` carries out each RUN step or throws for one it does
 * not know.
 */
export async function replayDockerfile(options: {
  dockerfile: string;
  context: string;
  into: string;
  run: (step: RunStep) => void | Promise<void>;
}): Promise<Stage[]> {
  const ignoreFile = join(options.context, ".dockerignore");
  let ignoreText = "";
  try {
    ignoreText = readFileSync(ignoreFile, "utf8");
  } catch {}
  const ignored = dockerignore(ignoreText);
  const stages: Stage[] = [];
  const where = (i: Instruction) => `${options.dockerfile}:${i.line} ${i.keyword}`;
  for (const instruction of parseDockerfile(readFileSync(options.dockerfile, "utf8"))) {
    const { keyword, args } = instruction;
    if (keyword === "FROM") {
      const match = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!match) throw new Error(`${where(instruction)}: expected FROM <image> [AS <name>]`);
      if (stages.some((s) => s.name === match[1])) {
        throw new Error(`${where(instruction)}: a stage built on another stage is not replayed`);
      }
      const root = join(options.into, `stage-${stages.length}`);
      mkdirSync(root, { recursive: true });
      stages.push({
        name: match[2],
        from: match[1]!,
        root,
        workdir: "/",
        env: {},
        user: undefined,
        exposed: [],
        entrypoint: undefined,
        cmd: undefined,
        healthcheck: undefined,
        runs: [],
      });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`${where(instruction)}: before any FROM`);
    switch (keyword) {
      case "WORKDIR":
        stage.workdir = posix.resolve(stage.workdir, args);
        mkdirSync(hostPath(stage, "."), { recursive: true });
        break;
      case "ENV":
        Object.assign(stage.env, parseEnv(args));
        break;
      case "USER":
        stage.user = args;
        break;
      case "EXPOSE":
        stage.exposed.push(...words(args));
        break;
      case "LABEL":
        break;
      case "ENTRYPOINT":
        stage.entrypoint = execForm(args, where(instruction));
        break;
      case "CMD":
        stage.cmd = execForm(args, where(instruction));
        break;
      case "HEALTHCHECK":
        stage.healthcheck = parseHealthcheck(args);
        break;
      case "RUN":
        if (args.startsWith("[") || /^--/.test(args) || args.includes("<<")) {
          throw new Error(`${where(instruction)}: only a plain shell-form RUN is replayed`);
        }
        stage.runs.push(args);
        await options.run({
          command: args,
          stage,
          cwd: hostPath(stage, "."),
          line: instruction.line,
        });
        break;
      case "COPY":
        copy(instruction, stage, stages, options.context, ignored, where(instruction));
        break;
      default:
        throw new Error(`${where(instruction)}: the replay does not know this instruction`);
    }
  }
  if (stages.length === 0) throw new Error(`${options.dockerfile}: no FROM`);
  return stages;
}

function copy(
  instruction: Instruction,
  stage: Stage,
  stages: Stage[],
  context: string,
  ignored: (path: string) => boolean,
  where: string,
): void {
  const tokens = instruction.args.startsWith("[")
    ? execForm(instruction.args, where)
    : words(instruction.args);
  let from: Stage | undefined;
  const paths: string[] = [];
  for (const token of tokens) {
    const flag = /^--([a-z]+)(?:=(.*))?$/.exec(token);
    if (!flag) {
      paths.push(token);
    } else if (flag[1] === "from") {
      from = stages.find((s) => s.name === flag[2]) ?? stages[Number(flag[2])];
      if (!from || from === stage) throw new Error(`${where}: no earlier stage ${flag[2]}`);
    } else if (flag[1] !== "chown" && flag[1] !== "chmod" && flag[1] !== "link") {
      throw new Error(`${where}: the replay does not know --${flag[1]}`);
    }
  }
  const dest = paths.pop();
  if (!dest || paths.length === 0) throw new Error(`${where}: expected sources and a destination`);
  if (paths.length > 1 && !dest.endsWith("/")) {
    throw new Error(`${where}: with several sources the destination must end with /`);
  }
  const destination = hostPath(stage, dest);
  for (const path of paths) {
    if (/[*?[]/.test(path)) throw new Error(`${where}: wildcards are not replayed (${path})`);
    let source: string;
    let contextPath: string | undefined;
    if (from) {
      source = join(from.root, posix.resolve("/", path));
    } else {
      contextPath = posix.normalize(path).replace(/^\/+/, "").replace(/\/+$/, "");
      if (contextPath.startsWith("..")) throw new Error(`${where}: ${path} leaves the context`);
      if (contextPath !== "." && ignored(contextPath)) {
        throw new Error(`${where}: ${path} is left out of the build context by .dockerignore`);
      }
      source = join(context, contextPath);
    }
    let isDirectory: boolean;
    try {
      isDirectory = statSync(source).isDirectory();
    } catch {
      throw new Error(`${where}: ${path} does not exist${from ? ` in stage ${from.name}` : ""}`);
    }
    // A directory's contents go into the destination; a file goes into it when it ends with /.
    const target =
      !isDirectory && (dest.endsWith("/") || paths.length > 1)
        ? join(destination, posix.basename(path))
        : destination;
    cpSync(source, target, {
      recursive: true,
      filter: (file) => {
        if (contextPath === undefined) return true;
        const inContext = relative(context, file).split("\\").join("/");
        return statSync(file).isDirectory() || !ignored(inContext);
      },
    });
  }
}
