/**
 * A buffered, size-rotated log file that many processes append to at once.
 *
 * Records are formatted into memory as they come ({@link formatLogLine}: one
 * physical line each). A flush, at disposal (once per plugin process), when
 * the buffer passes `bufferBytes`, or every `flushIntervalMs` for a
 * long-running process:
 *
 * 1. takes an exclusive `flock` on `${path}.lock` (created 0600, never
 *    deleted; the kernel drops it when the holder dies, so it is never
 *    stale). One `tryLock()`, then a blocking `lock()` raced against
 *    `lockTimeoutMs` (as `cni/state_file.ts` does);
 * 2. stats the log: a path that exists and is not a regular file (a FIFO
 *    would block the open forever) turns the sink off for good;
 * 3. when the log is non-empty and its size plus the buffer exceeds
 *    `maxBytes`, rotates: `${path}.(n-1)` → `${path}.n`, …, `${path}` →
 *    `${path}.1`, where `.n` is the first missing old file (then nothing
 *    older moves) or `.keep` (replaced: the oldest goes). A rotation costs
 *    the old files there are, not `keep`, so a large `keep` does not hold
 *    the lock longer;
 * 4. opens the log append/create (0640), writes the whole buffer in one write
 *    loop, closes it, and releases the lock.
 *
 * Every writer holds the lock while it rotates or appends, so records of
 * concurrent processes never interleave, no record is written into a file
 * that is being renamed or deleted, and no file grows past `maxBytes` unless
 * a single flush alone is larger. Should the lock time out (a holder stuck on
 * a dead disk), the buffer is appended without it and without rotating: an
 * `O_APPEND` write still lands whole, and a CNI command never hangs on its
 * log. There is no fsync: the page cache is shared by all readers, and an
 * fsync per process would cost about a millisecond.
 *
 * A missing directory is created (with its missing parents) 0750 whatever
 * the umask; directories that already exist are never touched. Any failure
 * drops the buffered lines and is otherwise silent: logging must never fail a
 * CNI command.
 *
 * @module
 */
import type { LogRecord, Sink } from "@logtape/logtape";
import { formatLogLine } from "./log_format.ts";

/** Options of {@link LogFileSink}. */
export interface LogFileSinkOptions {
  /** Rotate before a flush that would grow the log past this; 5 MiB. */
  maxBytes?: number;
  /** Rotated files kept (`.1` newest … `.keep` oldest); default 8. */
  keep?: number;
  /** Flush as soon as this much is buffered; default 64 KiB. */
  bufferBytes?: number;
  /** Also flush every this many ms (a long-running process); default never. */
  flushIntervalMs?: number;
  /** How long a flush waits for the lock before appending without it; 2000. */
  lockTimeoutMs?: number;
  /** Record to line (ending in `\n`); default {@link formatLogLine}. */
  formatter?: (record: LogRecord) => string;
}

/** Default rotation size: 5 MiB, as the original plugins. */
export const DEFAULT_LOG_MAX_BYTES = 5 * 1024 * 1024;
/** Default number of rotated files, as the original plugins. */
export const DEFAULT_LOG_KEEP = 8;

const LOCKED = Symbol("locked");
const TIMED_OUT = Symbol("timed out");
const ENCODER = new TextEncoder();

/**
 * A log file sink with a memory buffer, flushed under a lock, rotated at a
 * size limit (see the module notes for the protocol).
 *
 * `sink` is what logtape calls; it is not disposable itself, so logtape may
 * be reconfigured (a level change) without a flush. Dispose the
 * `LogFileSink` (or call {@link LogFileSink.flush}) to write.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { LogFileSink } from "./log_file_sink.ts";
 * const dir = await Deno.makeTempDir();
 * {
 *   await using file = new LogFileSink(`${dir}/logs/p.log`, { maxBytes: 100 });
 *   file.writeLine("first\n");
 *   await file.flush();
 *   file.writeLine(`${"x".repeat(100)}\n`);
 * }
 * // The second flush would pass 100 bytes: the first went to `p.log.1`.
 * assert.equal(await Deno.readTextFile(`${dir}/logs/p.log.1`), "first\n");
 * assert.equal((await Deno.readTextFile(`${dir}/logs/p.log`)).length, 101);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class LogFileSink implements AsyncDisposable {
  /** The log file. */
  readonly path: string;
  /** The logtape sink: formats the record into the buffer. */
  readonly sink: Sink;
  #maxBytes: number;
  #keep: number;
  #bufferBytes: number;
  #lockTimeoutMs: number;
  #lines: string[] = [];
  #buffered = 0;
  #off = false;
  #flushing: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Creates the sink. Nothing is opened until the first flush.
   *
   * @param path The log file.
   * @param options Rotation, buffering and lock options.
   * @throws {RangeError} For a `maxBytes` below 1 or a negative `keep`.
   */
  constructor(path: string, options: LogFileSinkOptions = {}) {
    this.path = path;
    this.#maxBytes = options.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.#keep = options.keep ?? DEFAULT_LOG_KEEP;
    if (!(this.#maxBytes >= 1) || !(this.#keep >= 0)) {
      throw new RangeError(
        `Invalid log rotation for "${path}": maxBytes ${this.#maxBytes}, keep ${this.#keep}`,
      );
    }
    this.#bufferBytes = options.bufferBytes ?? 64 * 1024;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 2000;
    const format = options.formatter ?? formatLogLine;
    this.sink = (record) => this.writeLine(format(record));
    if (options.flushIntervalMs !== undefined) {
      const timer = setInterval(() => {
        this.flush();
      }, options.flushIntervalMs);
      // The interval alone must not keep a process alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  /**
   * Buffers one formatted line (which should end in `\n`). Starts a flush
   * when the buffer reaches `bufferBytes`.
   *
   * @param line The line.
   */
  writeLine(line: string): void {
    if (this.#off) return;
    this.#lines.push(line);
    // UTF-16 length: a bound, not an exact byte count.
    this.#buffered += line.length;
    if (this.#buffered >= this.#bufferBytes) this.flush();
  }

  /**
   * Writes the buffered lines to the log (rotating it first if needed).
   * Never rejects; flushes run one at a time.
   *
   * @returns When the lines are written, or dropped after a failure.
   */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#flushNow());
    return this.#flushing;
  }

  /** Stops the interval and flushes. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }

  async #flushNow(): Promise<void> {
    if (this.#lines.length === 0) return;
    const data = ENCODER.encode(this.#lines.join(""));
    this.#lines = [];
    this.#buffered = 0;
    if (this.#off) return;
    let lock: Deno.FsFile | undefined;
    try {
      lock = await openLock(this.path);
      const locked = await acquire(lock, this.#lockTimeoutMs);
      await this.#append(data, locked);
    } catch {
      // Logging never fails a command: the lines are dropped.
    } finally {
      // Closing the descriptor releases the flock (after a timeout, the
      // orphaned lock() releases it as soon as it completes).
      lock?.close();
    }
  }

  async #append(data: Uint8Array, locked: boolean): Promise<void> {
    let size = -1;
    try {
      const st = await Deno.stat(this.path);
      if (!st.isFile) {
        // A FIFO, device or directory: never open it.
        this.#off = true;
        return;
      }
      size = st.size;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (locked && size > 0 && size + data.length > this.#maxBytes) {
      await rotate(this.path, this.#keep);
      size = -1;
    }
    const file = await Deno.open(this.path, {
      append: true,
      create: true,
      mode: 0o640,
    });
    try {
      // Exactly 0640 for a file we created, whatever the umask.
      if (size < 0) await Deno.chmod(this.path, 0o640);
      let off = 0;
      while (off < data.length) off += await file.write(data.subarray(off));
    } finally {
      file.close();
    }
  }
}

/** Opens (creating 0600, and its directory 0750 if missing) the lock file. */
async function openLock(path: string): Promise<Deno.FsFile> {
  const lockPath = `${path}.lock`;
  const options = { read: true, write: true, create: true, mode: 0o600 };
  try {
    return await Deno.open(lockPath, options);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await makeLogDir(dirOf(path));
  return await Deno.open(lockPath, options);
}

/** Takes the flock, waiting at most `timeoutMs`; false on timeout. */
async function acquire(lock: Deno.FsFile, timeoutMs: number): Promise<boolean> {
  const exclusive = true;
  if (await lock.tryLock(exclusive)) return true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), timeoutMs);
  });
  // A failure of the orphaned lock() after a timeout must not surface as an
  // unhandled rejection: keep it as a value.
  const locked = lock.lock(exclusive).then(
    () => LOCKED,
    (err: unknown) => err,
  );
  const won = await Promise.race([locked, expired]);
  clearTimeout(timer);
  if (won === LOCKED) return true;
  if (won === TIMED_OUT) return false;
  throw won;
}

/**
 * Shifts `path.N` → `path.N+1` … `path` → `path.1` up to the first missing
 * old file, or up to `path.keep`, which is replaced (the oldest goes).
 */
async function rotate(path: string, keep: number): Promise<void> {
  if (keep === 0) {
    await Deno.remove(path);
    return;
  }
  let free = 1;
  for (; free < keep; free++) {
    const taken = await Deno.lstat(`${path}.${free}`).then(
      () => true,
      (err) => {
        if (err instanceof Deno.errors.NotFound) return false;
        throw err;
      },
    );
    if (!taken) break;
  }
  for (let i = free - 1; i >= 1; i--) {
    await Deno.rename(`${path}.${i}`, `${path}.${i + 1}`);
  }
  await Deno.rename(path, `${path}.1`);
}

function dirOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/**
 * Creates `dir` and its missing parents, each 0750 whatever the umask; an
 * existing directory is left alone.
 *
 * @param dir The directory.
 * @returns When it exists.
 * @throws {Deno.errors.NotCapable} Without write permission on `dir`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeLogDir } from "./log_file_sink.ts";
 * const tmp = await Deno.makeTempDir();
 * await makeLogDir(`${tmp}/a/b`);
 * assert.equal(((await Deno.stat(`${tmp}/a/b`)).mode ?? 0) & 0o777, 0o750);
 * await Deno.remove(tmp, { recursive: true });
 * ```
 */
export async function makeLogDir(dir: string): Promise<void> {
  const mode = 0o750;
  try {
    await Deno.mkdir(dir, { mode });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return;
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    const parent = dirOf(dir);
    if (parent === dir) throw err;
    try {
      await makeLogDir(parent);
    } catch {
      // No permission on the parent (a launcher grants the log dir only):
      // let mkdir create the parents (mode 0750 minus the umask, never
      // wider), then fix the leaf below.
      await Deno.mkdir(dir, { mode, recursive: true });
      await Deno.chmod(dir, mode);
      return;
    }
    try {
      await Deno.mkdir(dir, { mode });
    } catch (again) {
      // Another process made it meanwhile: it sets the mode.
      if (again instanceof Deno.errors.AlreadyExists) return;
      throw again;
    }
  }
  await Deno.chmod(dir, mode);
}
