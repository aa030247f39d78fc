import { WebSocket } from "ws";
import {
  PROTOCOL_VERSION,
  type RunnerMessageInput as RunnerMessage,
  type ServerMessage,
  ServerMessage as ServerMessageSchema,
} from "../src/protocol/messages.ts";

type Welcome = Extract<ServerMessage, { type: "welcome" }>;
type Assign = Extract<ServerMessage, { type: "assign" }>;
type Cancel = Extract<ServerMessage, { type: "cancel" }>;
type Reply = Extract<ServerMessage, { type: "ack" | "stale" | "error" }>;
/** A frame without its `id`: the client numbers requests itself. */
type Outgoing = RunnerMessage extends infer M
  ? M extends RunnerMessage
    ? Omit<M, "id">
    : never
  : never;

export interface ClientLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface RunnerClientOptions {
  serverUrl: string;
  token: string;
  name: string;
  version: string;
  capabilities: string[];
  slots: number;
  /** The tasks this runner is still working on (from its journal), for `hello`. */
  running: () => { task_id: string; generation: number }[];
  onWelcome: (welcome: Welcome) => void;
  onAssign: (assign: Assign) => void;
  onCancel: (cancel: Cancel) => void;
  logger: ClientLogger;
  /** Reconnect backoff: 1 s doubling to 60 s, with jitter (tests shorten it). */
  backoff?: { initialMs: number; maxMs: number };
  /** Keepalive ping interval (default 20 s). */
  pingMs?: number;
}

/** The socket closed before the server answered; wait for the next welcome and decide again. */
export class DisconnectedError extends Error {
  override name = "DisconnectedError";
}

export interface RunnerClient {
  start(): void;
  /** Sends a frame and resolves with the server's ack, stale or error (rate limits are obeyed). */
  request(frame: Outgoing): Promise<Reply>;
  /** Sends a frame nobody waits for (heartbeats and logs may be lost with a connection). */
  post(frame: Outgoing): void;
  /** Resolves at the next `welcome` (at once if connected). */
  connected(): Promise<Welcome>;
  stop(): Promise<void>;
}

export function socketUrl(serverUrl: string): string {
  const url = new URL(serverUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/runners/v1`;
  return url.toString();
}

/**
 * The runner's side of the WebSocket: connects, says `hello`, reconnects with exponential backoff
 * and jitter (reset after a successful `welcome`), keeps the connection alive, numbers requests
 * and matches replies, and waits out `rate_limited`.
 */
export function createRunnerClient(options: RunnerClientOptions): RunnerClient {
  const backoff = options.backoff ?? { initialMs: 1_000, maxMs: 60_000 };
  let ws: WebSocket | undefined;
  let welcome: Welcome | undefined;
  let stopped = false;
  let failures = 0;
  let nextId = 1;
  let reconnectTimer: NodeJS.Timeout | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  const pending = new Map<
    string,
    { resolve: (reply: Reply) => void; reject: (e: Error) => void; frame: RunnerMessage }
  >();
  let welcomeWaiters: ((w: Welcome) => void)[] = [];
  /** Until this time the server asked us to hold back. */
  let quietUntil = 0;

  const log = options.logger;

  function connect(): void {
    if (stopped) return;
    const socket = new WebSocket(socketUrl(options.serverUrl), {
      headers: { authorization: `Bearer ${options.token}` },
      handshakeTimeout: 10_000,
    });
    ws = socket;
    socket.on("open", () => {
      send({
        type: "hello",
        protocol: PROTOCOL_VERSION,
        name: options.name,
        version: options.version,
        capabilities: options.capabilities,
        slots: options.slots,
        running: options.running(),
      });
      clearInterval(pingTimer);
      pingTimer = setInterval(() => send({ type: "ping" }), options.pingMs ?? 20_000);
      pingTimer.unref();
    });
    socket.on("message", (data) => onMessage(String(data)));
    socket.on("unexpected-response", (_req, res) => {
      const retryAfter = Number(res.headers["retry-after"] ?? 0) * 1000;
      if (retryAfter) quietUntil = Date.now() + retryAfter;
      // A refusal says why in a small JSON body: {"error": "…"}.
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        if (body.length < 4096) body += chunk;
      });
      const report = () => {
        let said: string | undefined;
        try {
          said = (JSON.parse(body) as { error?: unknown }).error as string | undefined;
        } catch {
          said = undefined;
        }
        log.warn(
          {
            status: res.statusCode,
            retryAfterMs: retryAfter || undefined,
            error: typeof said === "string" ? said : undefined,
          },
          res.statusCode === 401
            ? "server refused the runner token (unknown or revoked)"
            : "server refused the connection",
        );
        socket.terminate();
      };
      res.once("end", report);
      res.once("error", report);
    });
    socket.on("error", (error) => log.warn({ err: error.message }, "runner connection error"));
    socket.on("close", (code, reason) => {
      clearInterval(pingTimer);
      if (ws === socket) ws = undefined;
      welcome = undefined;
      for (const [id, waiter] of pending) {
        pending.delete(id);
        waiter.reject(new DisconnectedError("connection closed before the server answered"));
      }
      if (stopped) return;
      const delay = Math.max(nextDelay(), quietUntil - Date.now());
      log.warn({ code, reason: reason.toString(), reconnectInMs: delay }, "runner disconnected");
      reconnectTimer = setTimeout(connect, delay);
    });
  }

  /** 1 s, 2 s, 4 s … capped, with ±20 % jitter so a fleet does not reconnect in lockstep. */
  function nextDelay(): number {
    const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** failures);
    failures++;
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  function onMessage(raw: string): void {
    let frame: ServerMessage;
    try {
      frame = ServerMessageSchema.parse(JSON.parse(raw));
    } catch (error) {
      log.warn({ err: (error as Error).message }, "ignored a frame the runner does not understand");
      return;
    }
    switch (frame.type) {
      case "welcome":
        welcome = frame;
        failures = 0;
        options.onWelcome(frame);
        for (const waiter of welcomeWaiters.splice(0)) waiter(frame);
        return;
      case "assign":
        options.onAssign(frame);
        return;
      case "cancel":
        options.onCancel(frame);
        return;
      case "rate_limited": {
        quietUntil = Date.now() + frame.retry_after_ms;
        const waiter = frame.id ? pending.get(frame.id) : undefined;
        if (waiter) setTimeout(() => send(waiter.frame), frame.retry_after_ms).unref();
        return;
      }
      case "ack":
      case "stale":
      case "error": {
        const waiter = frame.id ? pending.get(frame.id) : undefined;
        if (waiter && frame.id) {
          pending.delete(frame.id);
          waiter.resolve(frame);
        } else if (frame.type === "error") {
          log.warn(
            { code: frame.code, message: frame.message, errors: frame.errors },
            "server reported an error",
          );
        }
        return;
      }
      case "pong":
        return;
    }
  }

  function send(frame: RunnerMessage): void {
    const delay = quietUntil - Date.now();
    if (delay > 0 && frame.type !== "hello") {
      setTimeout(() => send(frame), delay).unref();
      return;
    }
    if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
  }

  return {
    start() {
      stopped = false;
      connect();
    },
    request(frame) {
      if (!welcome) return Promise.reject(new DisconnectedError("not connected"));
      const id = `r${nextId++}`;
      const withId = { ...frame, id } as RunnerMessage;
      return new Promise<Reply>((resolve, reject) => {
        pending.set(id, { resolve, reject, frame: withId });
        send(withId);
      });
    },
    post(frame) {
      if (welcome) send(frame as RunnerMessage);
    },
    connected() {
      if (welcome) return Promise.resolve(welcome);
      return new Promise((resolve) => welcomeWaiters.push(resolve));
    },
    async stop() {
      stopped = true;
      clearTimeout(reconnectTimer);
      clearInterval(pingTimer);
      welcomeWaiters = [];
      const socket = ws;
      if (!socket || socket.readyState === WebSocket.CLOSED) return;
      await new Promise<void>((resolve) => {
        socket.once("close", () => resolve());
        socket.close(1000, "runner stopping");
        setTimeout(() => {
          socket.terminate();
          resolve();
        }, 2_000).unref();
      });
    },
  };
}
