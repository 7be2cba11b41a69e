/**
 * Group commit of a state file's read-modify-writes within one process
 * (#14: the agent's bursts): updates that wait for the same file while
 * another batch holds it run together next, under one lock, one read and
 * one atomic write (one fsync). A process with one update at a time (a
 * plugin) sees exactly {@link withStateLock}.
 *
 * @module
 */
import { CniError, CODES } from "./errors.ts";
import { deepFreeze } from "./frozen_json.ts";
import {
  DEFAULT_LOCK_TIMEOUT_MS,
  type LockedStateFile,
  type StateParser,
  withStateLock,
} from "./state_file.ts";

/** What an update returns: its caller's value, and the state to save. */
export interface StateUpdate<S, T> {
  /** Passed back to the caller. */
  value: T;
  /** The new state to save; nothing is written for it when absent. */
  next?: S;
}

/** One read-modify-write of {@link updateStateFile}. */
export interface StateUpdateSpec<S, T> {
  /**
   * Turns the file's JSON (undefined when missing) into the state; throws
   * on a bad document. A batch uses its first update's.
   */
  parse: StateParser<S>;
  /**
   * With `copy`, the state is read deep-frozen and shared between reads of
   * the same text (`readParsed` of {@link LockedStateFile}: no parse while
   * the file holds what this process last wrote), and each `fn` gets
   * `copy(state)`: a copy deep enough for what `fn` changes, sharing the
   * rest (frozen, so a change there throws). The state saved is frozen in
   * turn, and printed reusing the text of what it shares. Without it, the
   * file is parsed on every batch and `fn` may change anything.
   */
  copy?: (state: S) => S;
  /** The synchronous update, on a private copy of the state. */
  fn: (state: S) => StateUpdate<S, T>;
}

/** Options of {@link updateStateFile}. */
export interface UpdateStateFileOptions {
  /** Bound of the wait for the lock, in the process and on the flock. */
  lockTimeoutMs?: number;
}

interface Pending {
  spec: StateUpdateSpec<unknown, unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  timeoutMs: number;
  /** When its wait for the lock ends (`performance.now()` ms). */
  deadline: number;
  /** Rejects it at its deadline unless a batch took it under the lock. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Rejected at its deadline, or taken by a batch that holds the lock. */
  settled: boolean;
}

/** Per file: the updates waiting for the next batch (a batch is running). */
const WAITING = new Map<string, Pending[]>();

function lockTimeout(path: string, ms: number): CniError {
  return new CniError(
    CODES.tryAgainLater,
    `Cannot lock state file "${path}": timed out after ${ms} ms`,
  );
}

/**
 * Locks the state file at `path`, parses it, runs `fn`, writes `next`
 * atomically when given, unlocks; see {@link withStateLock}.
 *
 * Updates of this process that arrive while a batch of the same file runs
 * form the next batch: one lock, one read, each `fn` in arrival order on
 * the state the ones before it left, one write when any returned `next`.
 * Each `fn` works on a private copy: what it changed without returning it
 * as `next`, or before throwing, is dropped. A caller's promise settles
 * once its batch is written; its wait for the lock, in the process and on
 * the flock, is bounded by its `lockTimeoutMs`. A batch waits for the flock
 * until the latest deadline of its members: one whose bound passes first
 * is rejected then (code 11), alone, and the others keep waiting.
 *
 * @param path The state file.
 * @param spec The parser and the update.
 * @param options The lock timeout (default 30 s).
 * @returns `fn`'s value.
 * @throws {CniError} 11 on a lock timeout; what `parse` or `fn` throws;
 * 5 on I/O.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { updateStateFile } from "./state_batch.ts";
 * const dir = await Deno.makeTempDir();
 * const parse = (raw: unknown) => (raw as { n: number } | undefined) ?? { n: 0 };
 * const bump = (s: { n: number }) => ({ value: s.n + 1, next: { n: s.n + 1 } });
 * const got = await Promise.all([1, 2, 3].map(() =>
 *   updateStateFile(`${dir}/s.json`, { parse, fn: bump })
 * ));
 * assert.deepEqual(got, [1, 2, 3]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function updateStateFile<S, T>(
  path: string,
  spec: StateUpdateSpec<S, T>,
  options: UpdateStateFileOptions = {},
): Promise<T> {
  const timeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  return new Promise<T>((resolve, reject) => {
    const pending: Pending = {
      spec: spec as StateUpdateSpec<unknown, unknown>,
      resolve: resolve as (value: unknown) => void,
      reject,
      timeoutMs,
      deadline: performance.now() + timeoutMs,
      timer: undefined,
      settled: false,
    };
    // Its own bound holds wherever it waits: behind a batch, or in one
    // that waits for the flock on behalf of members with more time.
    pending.timer = setTimeout(() => expire(path, pending), timeoutMs);
    const waiting = WAITING.get(path);
    if (waiting !== undefined) {
      waiting.push(pending);
      return;
    }
    WAITING.set(path, [pending]);
    drain(path);
  });
}

/** Runs batches of `path` until no update waits. Never rejects. */
async function drain(path: string): Promise<void> {
  for (;;) {
    const batch = WAITING.get(path) ?? [];
    if (batch.length === 0) {
      WAITING.delete(path);
      return;
    }
    // Whoever arrives from now on waits for the next batch.
    WAITING.set(path, []);
    await runBatch(path, batch);
  }
}

/** Rejects `p` with a lock timeout, unless it is settled or running. */
function expire(path: string, p: Pending): void {
  if (p.settled) return;
  p.settled = true;
  p.reject(lockTimeout(path, p.timeoutMs));
}

/**
 * Runs one batch: waits for the flock up to the latest deadline of its
 * members (each is rejected at its own by its timer), then runs the
 * members still waiting, in arrival order.
 */
async function runBatch(path: string, batch: Pending[]): Promise<void> {
  const now = performance.now();
  const waiting = batch.filter((p) => {
    if (p.deadline <= now) expire(path, p);
    return !p.settled;
  });
  if (waiting.length === 0) return;
  const waitMs = Math.max(
    1,
    Math.round(Math.max(...waiting.map((p) => p.deadline)) - now),
  );
  const outcomes: ({ value: unknown } | { error: unknown })[] = [];
  let live: Pending[] = [];
  try {
    await withStateLock(path, async (file) => {
      // Under the lock: the members not yet past their deadline are
      // taken; their timers no longer fire.
      live = waiting.filter((p) => !p.settled);
      for (const p of live) {
        p.settled = true;
        clearTimeout(p.timer);
      }
      const first = live[0];
      if (first === undefined) return;
      const { parse, copy } = first.spec;
      let state = copy === undefined
        ? parse(await file.read(), path)
        : await file.readParsed(parse);
      let dirty = false;
      for (const p of live) {
        // Alone, fn may have the parsed state itself; in a batch, a copy,
        // so that what it drops is not written with the others' changes.
        const mine = copy !== undefined
          ? copy(state)
          : live.length > 1
          ? structuredClone(state)
          : state;
        try {
          const out = p.spec.fn(mine);
          outcomes.push({ value: out.value });
          if (out.next !== undefined) {
            // With copy, frozen at once: what this update made is shared
            // with the next one's copy, which must not edit it.
            state = copy === undefined ? out.next : deepFreeze(out.next);
            dirty = true;
          }
        } catch (error) {
          outcomes.push({ error });
        }
      }
      if (dirty) await save(file, { state, parse, copy });
    }, { lockTimeoutMs: waitMs });
  } catch (err) {
    // Those taken under the lock get its error; the others waited for the
    // lock until the last deadline, so a lock timeout is theirs too, with
    // each caller's own bound.
    const timedOut = err instanceof CniError &&
      err.code === CODES.tryAgainLater;
    for (const p of live) p.reject(err);
    for (const p of waiting) {
      if (p.settled) continue;
      p.settled = true;
      clearTimeout(p.timer);
      p.reject(timedOut ? lockTimeout(path, p.timeoutMs) : err);
    }
    return;
  }
  live.forEach((p, i) => {
    const o = outcomes[i];
    if (o !== undefined && "value" in o) p.resolve(o.value);
    else p.reject(o?.error);
  });
}

/** Writes a batch's state; remembered (it is frozen) when the spec copies. */
function save(
  file: LockedStateFile,
  batch: { state: unknown; parse: StateParser<unknown>; copy?: unknown },
): Promise<void> {
  if (batch.copy === undefined) return file.write(batch.state);
  return file.write(batch.state, batch.parse);
}
