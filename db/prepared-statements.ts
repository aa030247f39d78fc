import type postgres from "postgres";

/**
 * How many distinct statement texts one process prepares. The whole loop of `npm run demo` (intake,
 * dispatch, publishing, merging, commands) uses about 110; the bound keeps a statement built with
 * a varying shape (an `in (…)` list of varying length, say) from filling every connection's plan
 * cache: texts beyond it run unprepared, as before.
 */
export const MAX_PREPARED_TEXTS = 200;

/** Which statement texts are prepared: the first `max` distinct ones with parameters. */
export interface PreparedTexts {
  admit(text: string): boolean;
  readonly size: number;
}

export function createPreparedTexts(max: number = MAX_PREPARED_TEXTS): PreparedTexts {
  const texts = new Set<string>();
  return {
    admit(text) {
      if (texts.has(text)) return true;
      if (texts.size >= max) return false;
      texts.add(text);
      return true;
    },
    get size() {
      return texts.size;
    },
  };
}

type UnsafeOptions = Parameters<postgres.Sql["unsafe"]>[2];
type Unsafe = (text: string, args?: unknown[], options?: UnsafeOptions) => unknown;

/**
 * drizzle runs every statement through `sql.unsafe(text, params)`, which postgres.js sends
 * unprepared: PostgreSQL parses and plans it again on every call. For the dispatcher's and the
 * runner frames' statements (CTEs over several tables) planning costs five to ten times the
 * execution: 1.1 ms of planning for 0.2 ms of work for the dispatch pass's read. This client
 * prepares statements with parameters instead (a named statement per connection, which
 * PostgreSQL plans once and then runs from its plan cache), for the first `MAX_PREPARED_TEXTS`
 * texts; statements without parameters (migrations, several statements in one text) go as before.
 * Transactions and savepoints get the same client. PostgreSQL drops a cached plan whose tables
 * changed, and postgres.js prepares the statement again when the server says so.
 */
export function preparing<T extends postgres.Sql | postgres.TransactionSql>(
  client: T,
  texts: PreparedTexts,
): T {
  return new Proxy(client, {
    get(target, property, receiver) {
      if (property === "unsafe") {
        const unsafe = Reflect.get(target, property, receiver) as Unsafe;
        return (text: string, args?: unknown[], options?: UnsafeOptions) =>
          unsafe(text, args, {
            ...options,
            prepare: Boolean(options?.prepare) || (!!args?.length && texts.admit(text)),
          });
      }
      if (property === "begin" || property === "savepoint") {
        const open = Reflect.get(target, property, receiver) as (...args: unknown[]) => unknown;
        return (...args: unknown[]) => {
          const last = args.length - 1;
          const body = args[last] as (tx: postgres.TransactionSql) => unknown;
          args[last] = (tx: postgres.TransactionSql) => body(preparing(tx, texts));
          return open(...args);
        };
      }
      return Reflect.get(target, property, receiver);
    },
  });
}
