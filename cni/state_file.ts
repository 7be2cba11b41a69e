/**
 * A locked, crash-safe JSON state file, shared by both plugins (the IPAM
 * store and the network plugin's endpoint state).
 *
 * Locking: an exclusive `flock` on `${path}.lock` (created 0600, never
 * deleted). The kernel drops the lock when the holder dies, so a lock is
 * never stale. Waiting is bounded by polling `FsFile.tryLock()` with a short
 * backoff (1 ms doubling to 25 ms) until `lockTimeoutMs`. Polling was chosen
 * over racing the blocking `lock()` against a timer: a lost race would leave
 * a blocked thread that may take the lock later, behind our back.
 *
 * Writing: a temp file in the same directory, written and fsynced, renamed
 * over the state file, then the directory is fsynced. A crash leaves either
 * the old or the new document, never a torn one.
 *
 * @module
 */
import { CniError, CODES, PLUGIN_CODES } from "./errors.ts";

/** Options of {@link withStateLock}. */
export interface StateFileOptions {
  /** How long to wait for the lock, in ms. Default 30000. */
  lockTimeoutMs?: number;
  /** Injectable sleep used between lock attempts. */
  sleep?: (ms: number) => Promise<void>;
  /** Injectable clock (ms) for the timeout. Default `Date.now`. */
  now?: () => number;
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

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

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
    let text: string;
    try {
      text = Deno.readTextFileSync(this.path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw new CniError(
        CODES.ioFailure,
        `Cannot read state file "${this.path}"`,
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
    const aside = `${this.path}.corrupt-${timestamp()}`;
    try {
      Deno.copyFileSync(this.path, aside);
      Deno.chmodSync(aside, 0o600);
    } catch (copyErr) {
      throw new CniError(
        PLUGIN_CODES.corruptState,
        `State file "${this.path}" is corrupt (${what}) and cannot be copied aside to "${aside}"; recover with \`deno task state repair\` or delete it`,
        { cause: new AggregateError([problem, copyErr], "Corrupt state") },
      );
    }
    throw new CniError(
      PLUGIN_CODES.corruptState,
      `State file "${this.path}" is corrupt (${what}); a copy is kept at "${aside}"; recover with \`deno task state repair\` or delete it`,
      { cause: problem },
    );
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
    try {
      const d = Deno.openSync(dir, { read: true });
      try {
        d.syncSync();
      } finally {
        d.close();
      }
    } catch {
      // fsync of a directory is best effort (some filesystems refuse it);
      // the rename itself is atomic.
    }
  }
}

/**
 * Runs `fn` while holding the exclusive lock of the state file at `path`.
 *
 * The lock is `flock` on `${path}.lock` (created 0600 with its directory
 * 0755; never deleted). Waiting is bounded: the lock is polled with
 * `tryLock()` until `lockTimeoutMs`. The lock is released when `fn` settles,
 * whether it returns or throws. Hold it for the read-modify-write only, never
 * across a network call.
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
  const sleep = options.sleep ?? defaultSleep;
  const now = options.now ?? Date.now;
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
  using _lock = { [Symbol.dispose]: () => lockFile.close() };
  const exclusive = true;
  const start = now();
  let delay = 1;
  while (!(await lockFile.tryLock(exclusive))) {
    const waited = now() - start;
    if (waited >= timeoutMs) {
      throw new CniError(
        CODES.tryAgainLater,
        `Cannot lock state file "${path}": timed out after ${timeoutMs} ms`,
      );
    }
    await sleep(Math.min(delay, Math.max(1, timeoutMs - waited)));
    delay = Math.min(delay * 2, 25);
  }
  const file = new StateFile(path);
  try {
    return await fn(file);
  } finally {
    file.close();
    // Closing the descriptor (the `using` above) releases the flock.
  }
}
