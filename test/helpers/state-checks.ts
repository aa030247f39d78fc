/** Every number anywhere in the value is finite (no NaN or Infinity leaked into a state). */
export function finiteNumbers(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  if (value && typeof value === "object") return Object.values(value).every(finiteNumbers);
  return true;
}

/** Freezes a value all the way down, so a test proves a pure function never mutates its input. */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
