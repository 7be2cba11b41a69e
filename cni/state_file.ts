/**
 * A locked, crash-safe JSON state file, shared by both plugins (the IPAM
 * store and the network plugin's endpoint state).
 *
 * Locking: an exclusive `flock` on `${path}.lock` (created 0600, never
 * deleted). The kernel drops the lock when the holder dies, so a lock is
 * never stale. One `tryLock()` first (no thread when the lock is free); then
 * the waiter blocks in the kernel (`FsFile.lock()`, a blocking thread) raced
 * against one timer of `lockTimeoutMs`. The kernel wakes waiters the moment
 * the lock is released, so hundreds of waiting processes neither burn CPU
 * nor leave the lock idle between polls (polling with a 1 to 25 ms backoff
 * made 110 and 250 concurrent ADDs time out after 30 s).
 *
 * A waiter that times out closes its descriptor while its `lock()` is still
 * blocked. Deno keeps the descriptor open until that op completes; when the
 * holder releases, the orphaned op takes the lock and the descriptor is
 * closed right away, which releases it again (verified with Deno 2.9.6: a
 * third process's `tryLock()` succeeds just after). Nothing ever runs under
 * such a lock, and a plugin process exits right after its error anyway.
 *
 * Writing: a temp file in the same directory, written and fsynced, renamed
 * over the state file; the directory is fsynced after the lock is released
 * (durability of the rename; the rename itself is atomic). A crash leaves
 * either the old or the new document, never a torn one. Because writes are
 * atomic renames, {@link readStateFile} may read without the lock: it sees
 * one complete document.
 *
 * @module
 */
import { CniError, CODES, PLUGIN_CODES } from "./errors.ts";

/** Options of {@link withStateLock}. */
export interface StateFileOptions {
  /** How long to wait for the lock, in ms. Default 30000. */
  lockTimeoutMs?: number;
  /**
   * Injectable timer for the lock wait: resolves after `ms`. Default: a
   * `setTimeout` that is cleared once the lock is taken.
   */
  sleep?: (ms: number) => Promise<void>;
}

/** The state file while its lock is held. */
export interface LockedStateFile {
  /** The state file path. */
  readonly path: string;
  /**
   * Reads and parses the file.
   *
   * @returns The parsed JSON, or undefined when the file is missing, empty
   * or whitespace only.
   * @throws {CniError} Code 102 when the JSON is unparsable; the file is
   * copied aside to `${path}.corrupt-<timestamp>` first.
   */
  read(): unknown | undefined;
  /**
   * Atomically replaces the file with `JSON.stringify(value)` (mode 0600).
   *
   * @param value Any JSON-serialisable value.
   */
  write(value: unknown): void;
}

/** The default lock timeout in ms. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return path.slice(0, i);
}

function timestamp(): string {
  return new Date().toISOString().replace(/[-:.]/g, "");
}

class StateFile implements LockedStateFile {
  readonly path: string;
  #open = true;
  #written = false;

  constructor(path: string) {
    this.path = path;
  }

  close(): void {
    this.#open = false;
  }

  #assertOpen(): void {
    if (!this.#open) {
      throw new Error(
        `Cannot use state file "${this.path}": its lock was released`,
      );
    }
  }

  read(): unknown | undefined {
    this.#assertOpen();
    return readDocument(this.path);
  }

  /** True once {@link StateFile.write} replaced the file. */
  get written(): boolean {
    return this.#written;
  }

  write(value: unknown): void {
    this.#assertOpen();
    const dir = dirOf(this.path);
    const text = JSON.stringify(value, null, 2) + "\n";
    const tmp = `${this.path}.tmp-${Deno.pid}-${
      crypto.randomUUID().slice(0, 8)
    }`;
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
      const file = Deno.openSync(tmp, {
        write: true,
        createNew: true,
        mode: 0o600,
      });
      try {
        const data = new TextEncoder().encode(text);
        let off = 0;
        while (off < data.length) off += file.writeSync(data.subarray(off));
        file.syncSync();
      } finally {
        file.close();
      }
      Deno.renameSync(tmp, this.path);
      this.#written = true;
    } catch (err) {
      try {
        Deno.removeSync(tmp);
      } catch {
        // The temp file may not exist; nothing to clean up.
      }
      throw new CniError(
        CODES.ioFailure,
        `Cannot write state file "${this.path}"`,
        { cause: err },
      );
    }
  }
}

/** fsyncs a directory, best effort (some filesystems refuse it). */
function syncDir(dir: string): void {
  try {
    const d = Deno.openSync(dir, { read: true });
    try {
      d.syncSync();
    } finally {
      d.close();
    }
  } catch {
    // The rename itself is atomic; only its durability is at stake.
  }
}

function readDocument(path: string): unknown | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new CniError(
      CODES.ioFailure,
      `Cannot read state file "${path}"`,
      { cause: err },
    );
  }
  // We only ever write complete documents (temp file, fsync, rename), so an
  // empty file is damage, not "no state": treating it as empty state would
  // hand out addresses that live pods hold.
  let problem: unknown;
  if (text.trim() === "") {
    problem = new SyntaxError("the file is empty");
  } else {
    try {
      return JSON.parse(text);
    } catch (err) {
      problem = err;
    }
  }
  const what = text.trim() === "" ? "empty" : "invalid JSON";
  const aside = `${path}.corrupt-${timestamp()}`;
  try {
    Deno.copyFileSync(path, aside);
    Deno.chmodSync(aside, 0o600);
  } catch (copyErr) {
    throw new CniError(
      PLUGIN_CODES.corruptState,
      `State file "${path}" is corrupt (${what}) and cannot be copied aside to "${aside}"; recover with \`deno task state repair\` or delete it`,
      { cause: new AggregateError([problem, copyErr], "Corrupt state") },
    );
  }
  throw new CniError(
    PLUGIN_CODES.corruptState,
    `State file "${path}" is corrupt (${what}); a copy is kept at "${aside}"; recover with \`deno task state repair\` or delete it`,
    { cause: problem },
  );
}

/**
 * Reads and parses the state file at `path` WITHOUT taking its lock. Safe
 * because every write is an atomic rename of a complete, fsynced document:
 * the result is one consistent snapshot, possibly already stale. Use it for
 * read-only decisions; re-read under {@link withStateLock} before any
 * read-modify-write.
 *
 * @param path The state file path.
 * @returns The parsed JSON, or undefined when the file is missing.
 * @throws {CniError} Code 102 when the file is empty or unparsable (copied
 * aside first); code 5 on other read errors.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readStateFile, withStateLock } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/state.json`;
 * assert.equal(readStateFile(path), undefined);
 * await withStateLock(path, (f) => f.write({ n: 1 }));
 * assert.deepEqual(readStateFile(path), { n: 1 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readStateFile(path: string): unknown | undefined {
  return readDocument(path);
}

/**
 * Runs `fn` while holding the exclusive lock of the state file at `path`.
 *
 * The lock is `flock` on `${path}.lock` (created 0600 with its directory
 * 0755; never deleted). Waiting is bounded: after one `tryLock()`, the
 * blocking `lock()` is raced against one timer of `lockTimeoutMs` (see the
 * module notes for what becomes of a waiter that times out). The lock is
 * released when `fn` settles, whether it returns or throws; the directory
 * fsync of a write happens after the release. Hold it for the
 * read-modify-write only, never across a network call, a process spawn or
 * kernel work.
 *
 * @param path The state file path, such as `/var/run/azure-vnet.json`.
 * @param fn The work to do with the locked file.
 * @param options Timeout, injectable sleep and clock.
 * @returns What `fn` returns.
 * @throws {CniError} Code 11 when the lock cannot be taken in time; code 5
 * when the lock file cannot be opened; code 102 from `read()` on corrupt JSON.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { withStateLock } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/state.json`;
 * const n = await withStateLock(path, (f) => {
 *   const cur = (f.read() as { n: number } | undefined)?.n ?? 0;
 *   f.write({ n: cur + 1 });
 *   return cur + 1;
 * });
 * assert.equal(n, 1);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withStateLock<T>(
  path: string,
  fn: (file: LockedStateFile) => Promise<T> | T,
  options: StateFileOptions = {},
): Promise<T> {
  const timeoutMs = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const lockPath = `${path}.lock`;
  let lockFile: Deno.FsFile;
  try {
    await Deno.mkdir(dirOf(path), { recursive: true, mode: 0o755 });
    lockFile = await Deno.open(lockPath, {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
  } catch (err) {
    throw new CniError(
      CODES.ioFailure,
      `Cannot open lock file "${lockPath}"`,
      { cause: err },
    );
  }
  const file = new StateFile(path);
  try {
    await acquire(lockFile, { path, timeoutMs, sleep: options.sleep });
    try {
      return await fn(file);
    } finally {
      file.close();
    }
  } finally {
    // Closing the descriptor releases the flock (or, after a timeout,
    // lets the orphaned lock() release it as soon as it completes).
    lockFile.close();
    if (file.written) syncDir(dirOf(path));
  }
}

const LOCKED = Symbol("locked");
const TIMED_OUT = Symbol("timed out");

/**
 * Takes the exclusive flock of `lockFile`, waiting at most `timeoutMs`.
 *
 * @throws {CniError} Code 11 on timeout.
 */
async function acquire(
  lockFile: Deno.FsFile,
  opts: {
    path: string;
    timeoutMs: number;
    sleep: ((ms: number) => Promise<void>) | undefined;
  },
): Promise<void> {
  const exclusive = true;
  if (await lockFile.tryLock(exclusive)) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = opts.sleep !== undefined
    ? opts.sleep(opts.timeoutMs).then(() => TIMED_OUT)
    : new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), opts.timeoutMs);
    });
  // A failure of the blocked lock() after the timeout must not surface as
  // an unhandled rejection: keep it as a value.
  const locked = lockFile.lock(exclusive).then(
    () => LOCKED,
    (err: unknown) => err,
  );
  const won = await Promise.race([locked, expired]);
  clearTimeout(timer);
  if (won === LOCKED) return;
  if (won === TIMED_OUT) {
    throw new CniError(
      CODES.tryAgainLater,
      `Cannot lock state file "${opts.path}": timed out after ${opts.timeoutMs} ms`,
    );
  }
  throw new CniError(
    CODES.ioFailure,
    `Cannot lock state file "${opts.path}"`,
    { cause: won },
  );
}
