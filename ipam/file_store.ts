/**
 * The file-backed IPAM store on `cni/state_file.ts`: flock on
 * `<path>.lock`, atomic writes, corrupt files kept aside and reported.
 *
 * @module
 */
import {
  CniError,
  CODES,
  DEFAULT_LOCK_TIMEOUT_MS,
  withStateLock,
} from "@vnet/cni";
import { parseIpamState } from "./state.ts";
import type { IpamState } from "./state.ts";
import type { IpamStore, StoreUpdate } from "./store.ts";

/** One update waiting for its turn on a file. */
interface Pending {
  fn: (state: IpamState | undefined) => StoreUpdate<unknown>;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
  /** Its lock timeout in ms. */
  timeoutMs: number;
  /** When its wait for the lock ends (`performance.now()` ms). */
  deadline: number;
}

/**
 * The updates of this process waiting for each state file. One batch at a
 * time runs per file: every update queued meanwhile joins the next one.
 */
const WAITING = new Map<string, Pending[]>();

function lockTimeout(path: string, ms: number): CniError {
  return new CniError(
    CODES.tryAgainLater,
    `Cannot lock state file "${path}": timed out after ${ms} ms`,
  );
}

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /** Bounded lock wait in ms (timeout: CNI code 11). */
  lockTimeoutMs?: number;
}

/**
 * The IPAM state in a JSON file, updated under a lock.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { FileStore } from "./file_store.ts";
 * const dir = await Deno.makeTempDir();
 * const store = new FileStore(`${dir}/azure-vnet-ipam.json`);
 * const had = await store.update((s) => ({ value: s === undefined }));
 * assert.equal(had, true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class FileStore implements IpamStore {
  /** The state file path. */
  readonly path: string;
  #lockTimeoutMs: number | undefined;

  /**
   * Creates a store on `path` (nothing is touched until the first update).
   *
   * @param path The state file, e.g. `/var/run/azure-vnet-ipam.json`.
   * @param options Lock timeout.
   */
  constructor(path: string, options: FileStoreOptions = {}) {
    this.path = path;
    this.#lockTimeoutMs = options.lockTimeoutMs;
  }

  /**
   * Locks, reads, runs `fn`, saves `next` when given, unlocks.
   *
   * Updates of one process that arrive while another holds the file run
   * together next (group commit, as in the agent's bursts): one lock, one
   * read, each `fn` in arrival order on the state the ones before it left,
   * and one atomic write (one fsync) when any returned `next`. Each `fn`
   * still works on a private copy: what it changed without returning it
   * as `next`, or before throwing, is dropped. A caller's promise settles
   * once the batch is written; its wait for the lock, in the process and
   * on the flock, is bounded by its `lockTimeoutMs`.
   *
   * @param fn The synchronous update.
   * @returns `fn`'s value.
   * @throws {CniError} 11 on lock timeout, 102 on a corrupt file, 5 on I/O.
   */
  update<T>(fn: (state: IpamState | undefined) => StoreUpdate<T>): Promise<T> {
    const timeoutMs = this.#lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      const waiting = WAITING.get(this.path);
      const pending: Pending = {
        fn,
        resolve: resolve as (value: unknown) => void,
        reject,
        timeoutMs,
        deadline: performance.now() + timeoutMs,
      };
      if (waiting !== undefined) {
        waiting.push(pending);
        return;
      }
      WAITING.set(this.path, [pending]);
      this.#drain();
    });
  }

  /** Runs batches until no update of this file waits. */
  async #drain(): Promise<void> {
    for (;;) {
      const batch = WAITING.get(this.path) ?? [];
      if (batch.length === 0) {
        WAITING.delete(this.path);
        return;
      }
      // Whoever arrives from now on waits for the next batch.
      WAITING.set(this.path, []);
      await this.#run(batch);
    }
  }

  async #run(batch: Pending[]): Promise<void> {
    const now = performance.now();
    const live = batch.filter((p) => {
      if (p.deadline > now) return true;
      p.reject(lockTimeout(this.path, p.timeoutMs));
      return false;
    });
    if (live.length === 0) return;
    const waitMs = Math.max(
      1,
      Math.round(Math.min(...live.map((p) => p.deadline)) - now),
    );
    const outcomes: ({ value: unknown } | { error: unknown })[] = [];
    try {
      await withStateLock(
        this.path,
        async (file) => {
          let state = parseIpamState(await file.read(), this.path);
          let dirty = false;
          for (const p of live) {
            // Alone, fn may have the parsed state itself; in a batch, a
            // copy, so that what it drops is not written by the others.
            const copy = live.length > 1 && state !== undefined
              ? structuredClone(state)
              : undefined;
            const mine = copy ?? state;
            try {
              const out = p.fn(mine);
              outcomes.push({ value: out.value });
              if (out.next !== undefined) {
                state = out.next;
                dirty = true;
              }
            } catch (error) {
              outcomes.push({ error });
            }
          }
          if (dirty) await file.write(state);
        },
        { lockTimeoutMs: waitMs },
      );
    } catch (err) {
      // A lock timeout is reported with each caller's own bound.
      const timedOut = err instanceof CniError &&
        err.code === CODES.tryAgainLater;
      for (const p of live) {
        p.reject(timedOut ? lockTimeout(this.path, p.timeoutMs) : err);
      }
      return;
    }
    live.forEach((p, i) => {
      const o = outcomes[i];
      if (o !== undefined && "value" in o) p.resolve(o.value);
      else p.reject(o?.error);
    });
  }
}
