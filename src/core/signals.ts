import type { Signal, Signals } from "./ports.ts";

/**
 * The signal board of one server: an emitter calls every listener of the signal at once, in the
 * order they were added. Listeners only wake things (a loop, the dispatcher, a live view), so they
 * return at once and do not throw.
 */
export function createSignals(): Signals {
  const listeners = new Map<Signal, Array<() => void>>();
  return {
    emit(signal) {
      for (const listener of listeners.get(signal) ?? []) listener();
    },
    on(signal, listener) {
      const list = listeners.get(signal);
      if (list) list.push(listener);
      else listeners.set(signal, [listener]);
    },
  };
}
