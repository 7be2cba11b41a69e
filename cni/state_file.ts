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
 * either the old or the new document, never a torn one, plus perhaps a
 * `<file>.tmp-*` that the next locked call sweeps. Because writes are
 * atomic renames, {@link readStateFile} may read without the lock: it sees
 * one complete document.
 *
 * Hostile files: the state and lock paths must be regular files (a FIFO
 * would block an open forever; anything else is code 5), every file
 * operation runs against a deadline (`opTimeoutMs`, code 5), and a damaged
 * document is kept once per distinct content ({@link keepCorruptCopy}), so
 * retries of a failing call never fill the disk.
 *
 * @module
 */
import { CniError, CODES, PLUGIN_CODES } from "./errors.ts";
import { deepFreeze, encodeJson, isDeepFrozen } from "./frozen_json.ts";

/** Options of {@link withStateLock}. */
export interface StateFileOptions {
  /** How long to wait for the lock, in ms. Default 30000. */
  lockTimeoutMs?: number;
  /**
   * Injectable timer for the lock wait: resolves after `ms`. Default: a
   * `setTimeout` that is cleared once the lock is taken.
   */
  sleep?: (ms: number) => Promise<void>;
  /**
   * The deadline of each file operation (open, stat, read, write, rename,
   * directory scan), in ms: a hung filesystem fails the call with code 5
   * instead of hanging it. Default 10000.
   */
  opTimeoutMs?: number;
}

/** The state file while its lock is held. */
export interface LockedStateFile {
  /** The state file path. */
  readonly path: string;
  /**
   * Reads and parses the file.
   *
   * @returns The parsed JSON, or undefined when the file is missing.
   * @throws {CniError} Code 102 when the file is empty or unparsable (one
   * copy per distinct content is kept at `${path}.corrupt-<hash>`); code 5
   * when it is not a regular file or the read fails or passes its deadline.
   */
  read(): Promise<unknown | undefined>;
  /**
   * Reads the file as `parse` validates it, deep-frozen: see
   * {@link readParsedStateFile}.
   *
   * @param parse The file's parser.
   * @returns The state, frozen, perhaps shared with earlier reads.
   * @throws {CniError} As {@link LockedStateFile.read}, and what `parse`
   * throws.
   */
  readParsed<S>(parse: StateParser<S>): Promise<S>;
  /**
   * Atomically replaces the file with `JSON.stringify(value, null, 2)`
   * (mode 0600). With `parsedBy`, `value` must be deep-frozen
   * (`deepFreeze`) and valid for that parser: the next
   * {@link LockedStateFile.readParsed} with it returns `value` itself while
   * the file still holds what was written.
   *
   * @param value Any JSON-serialisable value.
   * @param parsedBy The parser that accepts `value`.
   * @throws {CniError} Code 5 when a step fails or passes its deadline.
   */
  write(value: unknown, parsedBy?: StateParser<unknown>): Promise<void>;
}

/** The default lock timeout in ms. */
export const DEFAULT_LOCK_TIMEOUT_MS = 30_000;

/** The default deadline of one file operation in ms. */
export const DEFAULT_OP_TIMEOUT_MS = 10_000;

/** How old a `.corrupt-*.tmp-*` copy must be to be swept (an unlocked copy). */
const STALE_COPY_MS = 60_000;

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return path.slice(0, i);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function tempName(path: string): string {
  return `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Settles like `op`, or rejects with code 5 once `ms` pass first. The
 * operation itself cannot be cancelled: it goes on in Deno's blocking pool,
 * but the caller no longer waits for it.
 *
 * @param op The file operation.
 * @param spec The deadline in ms and what the operation does.
 * @returns `op`'s value.
 * @throws {CniError} Code 5 on the deadline; whatever `op` throws.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { withDeadline } from "./state_file.ts";
 * await assert.rejects(
 *   withDeadline(new Promise(() => {}), { ms: 10, what: "read x" }),
 *   { code: 5, message: "Cannot read x: no answer within 10 ms" },
 * );
 * ```
 */
export async function withDeadline<T>(
  op: Promise<T>,
  spec: { ms: number; what: string },
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() =>
      reject(
        new CniError(
          CODES.ioFailure,
          `Cannot ${spec.what}: no answer within ${spec.ms} ms`,
        ),
      ), spec.ms);
  });
  try {
    return await Promise.race([op, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a non-regular file is, for error messages. */
function kindOf(st: Deno.FileInfo): string {
  if (st.isDirectory) return "a directory";
  if (st.isFifo) return "a FIFO";
  if (st.isSocket) return "a socket";
  if (st.isCharDevice || st.isBlockDevice) return "a device";
  return "not a regular file";
}

/**
 * Stats `path`: undefined when missing; code 5 when it is anything but a
 * regular file (a FIFO would block an open forever).
 */
async function statRegular(
  path: string,
  spec: { ms: number; role: string },
): Promise<Deno.FileInfo | undefined> {
  let st: Deno.FileInfo;
  try {
    st = await withDeadline(Deno.stat(path), {
      ms: spec.ms,
      what: `stat ${spec.role} "${path}"`,
    });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    if (err instanceof CniError) throw err;
    throw new CniError(
      CODES.ioFailure,
      `Cannot stat ${spec.role} "${path}"`,
      { cause: err },
    );
  }
  if (!st.isFile) {
    throw new CniError(
      CODES.ioFailure,
      `The ${spec.role} "${path}" is ${
        kindOf(st)
      }, not a regular file; remove it`,
    );
  }
  return st;
}

class StateFile implements LockedStateFile {
  readonly path: string;
  #ms: number;
  #open = true;
  #written = false;

  constructor(path: string, ms: number) {
    this.path = path;
    this.#ms = ms;
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

  read(): Promise<unknown | undefined> {
    this.#assertOpen();
    return readDocument(this.path, this.#ms);
  }

  readParsed<S>(parse: StateParser<S>): Promise<S> {
    this.#assertOpen();
    return readParsed(this.path, parse, this.#ms);
  }

  /** True once {@link StateFile.write} replaced the file. */
  get written(): boolean {
    return this.#written;
  }

  async write(
    value: unknown,
    parsedBy?: StateParser<unknown>,
  ): Promise<void> {
    this.#assertOpen();
    if (parsedBy !== undefined && !isDeepFrozen(value)) {
      throw new TypeError(
        `Cannot remember state file "${this.path}": the state is not deep-frozen`,
      );
    }
    const dir = dirOf(this.path);
    const data = encodeJson(value, "\n");
    try {
      await withDeadline(
        Deno.mkdir(dir, { recursive: true, mode: 0o755 }),
        { ms: this.#ms, what: `create "${dir}"` },
      );
      await writeFileAtomic(this.path, data, { opTimeoutMs: this.#ms });
      this.#written = true;
      if (parsedBy !== undefined) {
        rememberParsed(this.path, {
          bytes: data,
          parse: parsedBy,
          state: value,
        });
      }
    } catch (err) {
      throw new CniError(
        CODES.ioFailure,
        `Cannot write state file "${this.path}"`,
        { cause: err },
      );
    }
  }
}

/** One completed atomic write, as {@link observeStateWrites} reports it. */
export interface StateWriteEvent {
  /** The file replaced. */
  readonly path: string;
  /** Bytes written. */
  readonly bytes: number;
  /** Wall time of create, write, fsync and rename, in seconds. */
  readonly seconds: number;
}

const writeObservers = new Set<(event: StateWriteEvent) => void>();

/**
 * Calls `observer` after each successful {@link writeFileAtomic} in this
 * process (the agent's `azure_vnet_state_write_duration_seconds`, #16). An
 * observer that throws is ignored. A plugin process registers none, so it
 * pays one empty `Set` check per write.
 *
 * @param observer Receives each write.
 * @returns A function that removes the observer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { observeStateWrites, writeFileAtomic } from "./state_file.ts";
 * const seen: string[] = [];
 * const stop = observeStateWrites((e) => seen.push(e.path));
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/f`, new TextEncoder().encode("x"));
 * stop();
 * assert.deepEqual(seen, [`${dir}/f`]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function observeStateWrites(
  observer: (event: StateWriteEvent) => void,
): () => void {
  writeObservers.add(observer);
  return () => {
    writeObservers.delete(observer);
  };
}

/**
 * Replaces the file at `path` with `bytes` atomically: a temp file in the
 * same directory (created new with `mode`), written, fsynced and renamed
 * over `path`. A reader sees the old or the new content, never a torn one.
 * On failure the temp file is removed, best effort (under a state lock the
 * next locked call sweeps a state file's leftovers).
 *
 * @param path The file to replace (its directory must exist).
 * @param bytes The new content.
 * @param options The mode (default 0600) and each step's deadline.
 * @throws {CniError} Code 5 when a step passes its deadline; otherwise the
 * failing step's own error.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { writeFileAtomic } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/f`, new TextEncoder().encode("x"));
 * assert.equal(await Deno.readTextFile(`${dir}/f`), "x");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  bytes: Uint8Array,
  options: { mode?: number; opTimeoutMs?: number } = {},
): Promise<void> {
  const ms = options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS;
  const tmp = tempName(path);
  const t0 = performance.now();
  const step = <T>(op: Promise<T>, what: string) =>
    withDeadline(op, { ms, what });
  try {
    const file = await step(
      Deno.open(tmp, {
        write: true,
        createNew: true,
        mode: options.mode ?? 0o600,
      }),
      `create "${tmp}"`,
    );
    try {
      let off = 0;
      while (off < bytes.length) {
        off += await step(file.write(bytes.subarray(off)), `write "${tmp}"`);
      }
      await step(file.sync(), `fsync "${tmp}"`);
    } finally {
      file.close();
    }
    await step(Deno.rename(tmp, path), `rename "${tmp}"`);
  } catch (err) {
    Deno.remove(tmp).catch(() => {});
    throw err;
  }
  if (writeObservers.size === 0) return;
  const event = {
    path,
    bytes: bytes.length,
    seconds: (performance.now() - t0) / 1000,
  };
  for (const observer of writeObservers) {
    try {
      observer(event);
    } catch {
      // An observer's failure is not the write's.
    }
  }
}

/** fsyncs a directory, best effort (some filesystems refuse it). */
async function syncDir(dir: string, ms: number): Promise<void> {
  try {
    const d = await withDeadline(Deno.open(dir, { read: true }), {
      ms,
      what: `open "${dir}"`,
    });
    try {
      await withDeadline(d.sync(), { ms, what: `fsync "${dir}"` });
    } finally {
      d.close();
    }
  } catch {
    // The rename itself is atomic; only its durability is at stake.
  }
}

/**
 * Removes what interrupted writers left next to the state file: every
 * `<file>.tmp-*` (writers make them only under the lock, which the caller
 * holds, so each one is dead) and `<file>.corrupt-*.tmp-*` copies older than
 * a minute (those are made without the lock). Best effort.
 */
async function sweepTempFiles(path: string, ms: number): Promise<void> {
  const dir = dirOf(path);
  const base = baseOf(path);
  const scan = async () => {
    const stale: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.startsWith(`${base}.`) || !e.isFile) continue;
      if (e.name.startsWith(`${base}.tmp-`)) stale.push(e.name);
      else if (/^\.corrupt-[^/]*\.tmp-/.test(e.name.slice(base.length))) {
        const st = await Deno.stat(`${dir}/${e.name}`);
        const age = Date.now() - (st.mtime?.getTime() ?? Date.now());
        if (age > STALE_COPY_MS) stale.push(e.name);
      }
    }
    for (const name of stale) await Deno.remove(`${dir}/${name}`);
  };
  try {
    await withDeadline(scan(), { ms, what: `sweep "${dir}"` });
  } catch {
    // A leftover temp file costs disk space, never correctness.
  }
}

/** Reads the state file's bytes; undefined when it is missing. */
async function readBytes(
  path: string,
  ms: number,
): Promise<Uint8Array | undefined> {
  let bytes: Uint8Array;
  try {
    if (await statRegular(path, { ms, role: "state file" }) === undefined) {
      return undefined;
    }
    bytes = await withDeadline(Deno.readFile(path), {
      ms,
      what: `read state file "${path}"`,
    });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    if (err instanceof CniError) throw err;
    throw new CniError(
      CODES.ioFailure,
      `Cannot read state file "${path}"`,
      { cause: err },
    );
  }
  return bytes;
}

/** Parses a state file's bytes: code 102, with a copy kept, when damaged. */
async function parseJson(
  path: string,
  bytes: Uint8Array,
  ms: number,
): Promise<unknown> {
  const text = new TextDecoder().decode(bytes);
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
  let aside: string;
  try {
    aside = await keepCorruptCopy(path, { bytes, opTimeoutMs: ms });
  } catch (copyErr) {
    throw new CniError(
      PLUGIN_CODES.corruptState,
      `State file "${path}" is corrupt (${what}) and cannot be copied aside; recover with \`deno task state repair\` or delete it`,
      { cause: new AggregateError([problem, copyErr], "Corrupt state") },
    );
  }
  throw new CniError(
    PLUGIN_CODES.corruptState,
    `State file "${path}" is corrupt (${what}); a copy is kept at "${aside}"; recover with \`deno task state repair\` or delete it`,
    { cause: problem },
  );
}

async function readDocument(
  path: string,
  ms: number,
): Promise<unknown | undefined> {
  const bytes = await readBytes(path, ms);
  return bytes === undefined ? undefined : await parseJson(path, bytes, ms);
}

/**
 * Validates a state file's JSON (undefined when the file is missing) into
 * its state, or throws (code 102). The same function for every read of one
 * file, so that its parses can be shared ({@link readParsedStateFile}).
 */
export type StateParser<S> = (raw: unknown, path: string) => S;

/** A file's content and its parse. */
interface Parsed {
  /** The bytes read or written. */
  bytes: Uint8Array;
  /** The parser. */
  parse: StateParser<unknown>;
  /** What it made of them, deep-frozen. */
  state: unknown;
}

/** The last parse of each file, by path (a few files per process). */
const PARSED = new Map<string, Parsed>();

/** How many files {@link PARSED} remembers (oldest forgotten first). */
const PARSED_FILES = 8;

function rememberParsed(path: string, entry: Parsed): void {
  PARSED.delete(path);
  PARSED.set(path, entry);
  if (PARSED.size > PARSED_FILES) {
    const oldest = PARSED.keys().next().value;
    if (oldest !== undefined) PARSED.delete(oldest);
  }
}

async function readParsed<S>(
  path: string,
  parse: StateParser<S>,
  ms: number,
): Promise<S> {
  const before = PARSED.get(path);
  const bytes = await readBytes(path, ms);
  if (bytes === undefined) return deepFreeze(parse(undefined, path));
  const last = PARSED.get(path);
  if (
    last !== undefined && last.parse === parse && sameBytes(last.bytes, bytes)
  ) {
    return last.state as S;
  }
  const state = deepFreeze(parse(await parseJson(path, bytes, ms), path));
  // A write remembered while this read ran is newer than what was read.
  if (PARSED.get(path) === before) {
    rememberParsed(path, {
      bytes,
      parse: parse as StateParser<unknown>,
      state,
    });
  }
  return state;
}

/** Byte equality, a word at a time (a state file is read on every call). */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  const aligned = a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0;
  const words = aligned ? a.length >>> 2 : 0;
  const wa = new Uint32Array(a.buffer, a.byteOffset, words);
  const wb = new Uint32Array(b.buffer, b.byteOffset, words);
  for (let i = 0; i < words; i++) if (wa[i] !== wb[i]) return false;
  for (let i = words * 4; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Keeps a copy of a damaged state file at `${path}.corrupt-<hash>` (0600),
 * named by the first 16 hex digits of the SHA-256 of its content: repeated
 * calls on the same damage (kubelet retries DEL forever) keep one copy, not
 * one per call. The copy is written to a temp name and renamed, so a copy
 * under that name is always complete.
 *
 * @param path The damaged file.
 * @param options Its content when already read; the deadline per step.
 * @returns The copy's path (existing or new).
 * @throws {Error} When the file cannot be read or the copy written.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { keepCorruptCopy } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/s.json`, "{");
 * const a = await keepCorruptCopy(`${dir}/s.json`);
 * assert.equal(await keepCorruptCopy(`${dir}/s.json`), a);
 * assert.match(a, /s\.json\.corrupt-[0-9a-f]{16}$/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function keepCorruptCopy(
  path: string,
  options: { bytes?: Uint8Array; opTimeoutMs?: number } = {},
): Promise<string> {
  const ms = options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS;
  const bytes = options.bytes ??
    await withDeadline(Deno.readFile(path), { ms, what: `read "${path}"` });
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  const hash = Array.from(digest.subarray(0, 8))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  const aside = `${path}.corrupt-${hash}`;
  try {
    await withDeadline(Deno.stat(aside), { ms, what: `stat "${aside}"` });
    return aside;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const tmp = tempName(aside);
  try {
    await withDeadline(
      Deno.writeFile(tmp, bytes, { createNew: true, mode: 0o600 }),
      { ms, what: `write "${tmp}"` },
    );
    await withDeadline(Deno.chmod(tmp, 0o600), { ms, what: `chmod "${tmp}"` });
    await withDeadline(Deno.rename(tmp, aside), {
      ms,
      what: `rename "${tmp}"`,
    });
  } catch (err) {
    Deno.remove(tmp).catch(() => {});
    throw err;
  }
  return aside;
}

/**
 * Reads and parses the state file at `path` WITHOUT taking its lock. Safe
 * because every write is an atomic rename of a complete, fsynced document:
 * the result is one consistent snapshot, possibly already stale. Use it for
 * read-only decisions; re-read under {@link withStateLock} before any
 * read-modify-write.
 *
 * @param path The state file path.
 * @param options The deadline of each file operation.
 * @returns The parsed JSON, or undefined when the file is missing.
 * @throws {CniError} Code 102 when the file is empty or unparsable (copied
 * aside first); code 5 when it is not a regular file, on other read errors
 * and on a deadline.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readStateFile, withStateLock } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/state.json`;
 * assert.equal(await readStateFile(path), undefined);
 * await withStateLock(path, (f) => f.write({ n: 1 }));
 * assert.deepEqual(await readStateFile(path), { n: 1 });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readStateFile(
  path: string,
  options: Pick<StateFileOptions, "opTimeoutMs"> = {},
): Promise<unknown | undefined> {
  return readDocument(path, options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS);
}

/**
 * Reads the state file at `path` WITHOUT its lock, as {@link readStateFile}
 * does, and returns it as `parse` validates it, deep-frozen (`deepFreeze`):
 * mutating it throws. While the file holds the text this process last read
 * or wrote with the same parser, the state from then is returned, neither
 * parsed nor validated again (the agent's reads of a large azure-vnet.json,
 * #14). Another process's write changes the text, so it is read afresh.
 *
 * @param path The state file path.
 * @param parse The file's parser (the same function on every read).
 * @param options The deadline of each file operation.
 * @returns The state, frozen.
 * @throws {CniError} As {@link readStateFile}, and what `parse` throws.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readParsedStateFile } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * const parse = (raw: unknown) => (raw ?? { n: 0 }) as { n: number };
 * await Deno.writeTextFile(`${dir}/s.json`, `{"n":1}`);
 * const a = await readParsedStateFile(`${dir}/s.json`, parse);
 * assert.equal(a, await readParsedStateFile(`${dir}/s.json`, parse));
 * assert.ok(Object.isFrozen(a));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readParsedStateFile<S>(
  path: string,
  parse: StateParser<S>,
  options: Pick<StateFileOptions, "opTimeoutMs"> = {},
): Promise<S> {
  return readParsed(path, parse, options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS);
}

/**
 * Runs `fn` while holding the exclusive lock of the state file at `path`.
 *
 * The lock is `flock` on `${path}.lock` (created 0600 with its directory
 * 0755; never deleted; anything but a regular file there is code 5). Waiting is bounded: after one `tryLock()`, the
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
 * Once the lock is held, temp files that interrupted writers left are swept
 * (see the module notes). Every file operation has a deadline
 * (`opTimeoutMs`).
 *
 * @throws {CniError} Code 11 when the lock cannot be taken in time; code 5
 * when the lock file cannot be opened, is not a regular file, or an
 * operation passes its deadline; code 102 from `read()` on corrupt JSON.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { withStateLock } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * const path = `${dir}/state.json`;
 * const n = await withStateLock(path, async (f) => {
 *   const cur = (await f.read() as { n: number } | undefined)?.n ?? 0;
 *   await f.write({ n: cur + 1 });
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
  const ms = options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS;
  const lockFile = await takeLock(path, {
    timeoutMs,
    ms,
    sleep: options.sleep,
  });
  const file = new StateFile(path, ms);
  try {
    await sweepTempFiles(path, ms);
    try {
      return await fn(file);
    } finally {
      file.close();
    }
  } finally {
    // Closing the descriptor releases the flock (or, after a timeout,
    // lets the orphaned lock() release it as soon as it completes).
    lockFile.close();
    if (file.written) await syncDir(dirOf(path), ms);
  }
}

/**
 * Runs `fn` holding the exclusive flock of `${path}.lock`, as
 * {@link withStateLock} holds a state file's, with nothing else: no state
 * file, no sweep of temp files. For locks that guard work rather than a
 * file, such as one attachment's ADD or DEL.
 *
 * @param path The guarded path (the lock file is `${path}.lock`).
 * @param fn The work.
 * @param options The lock and file operation timeouts.
 * @returns `fn`'s value.
 * @throws {CniError} 11 on a lock timeout; 5 on I/O; what `fn` throws.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileLockHeld, withFileLock } from "./state_file.ts";
 * const dir = await Deno.makeTempDir();
 * const held = await withFileLock(`${dir}/job`, () => fileLockHeld(`${dir}/job`));
 * assert.ok(held);
 * assert.ok(!await fileLockHeld(`${dir}/job`));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function withFileLock<T>(
  path: string,
  fn: () => Promise<T> | T,
  options: StateFileOptions = {},
): Promise<T> {
  const lockFile = await takeLock(path, {
    timeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS,
    ms: options.opTimeoutMs ?? DEFAULT_OP_TIMEOUT_MS,
    sleep: options.sleep,
  });
  try {
    return await fn();
  } finally {
    lockFile.close();
  }
}

/**
 * Whether someone holds the flock of `${path}.lock` now (this process
 * too, through another open): false when there is no lock file. Creates
 * nothing.
 *
 * @param path The guarded path.
 * @returns True while the lock is held.
 * @throws {CniError} 5 when the lock file cannot be opened or locked for
 * another reason than being held.
 */
export async function fileLockHeld(path: string): Promise<boolean> {
  const lockPath = `${path}.lock`;
  let file: Deno.FsFile;
  try {
    if (
      await statRegular(lockPath, {
        ms: DEFAULT_OP_TIMEOUT_MS,
        role: "lock file",
      }) === undefined
    ) return false;
    // A flock needs no write access: a read-only state dir is fine.
    file = await Deno.open(lockPath, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    if (err instanceof CniError) throw err;
    throw new CniError(CODES.ioFailure, `Cannot open lock file "${lockPath}"`, {
      cause: err,
    });
  }
  try {
    const exclusive = true;
    return !await file.tryLock(exclusive);
  } catch (err) {
    throw new CniError(CODES.ioFailure, `Cannot lock "${lockPath}"`, {
      cause: err,
    });
  } finally {
    file.close();
  }
}

/** The identity of a file: its device and inode. */
interface FileId {
  readonly dev: number;
  readonly ino: number | null;
}

function sameFile(a: FileId, b: FileId): boolean {
  return a.ino !== null && a.ino === b.ino && a.dev === b.dev;
}

/** How often an open of the lock file is tried while the path is replaced. */
const OPEN_ATTEMPTS = 5;

/**
 * Opens `${path}.lock` (made with its directory when missing; anything but
 * a regular file is code 5), with the identity of the file opened.
 *
 * The identity comes from the path, not the descriptor: Deno checks
 * `FsFile.stat()` against the file's real path, which a launcher granting
 * `/var/run` (a symlink to `/run`) does not cover. A stat of the path
 * before and after the open that name one file name the file opened; when
 * they differ (replaced meanwhile) the open is tried again.
 */
async function openLockFile(
  path: string,
  ms: number,
): Promise<{ file: Deno.FsFile; id: FileId }> {
  const lockPath = `${path}.lock`;
  const lockRole = { ms, role: "lock file" };
  for (let attempt = 1;; attempt++) {
    let file: Deno.FsFile;
    let before: Deno.FileInfo | undefined;
    try {
      // A FIFO would block the open below forever: refuse anything but a
      // regular file first. The lock file is never deleted by us, so once
      // it is there, so is its directory: only without it is the directory
      // made (and the lock file looked at again, as before).
      before = await statRegular(lockPath, lockRole).catch(() => undefined);
      if (before === undefined) {
        await withDeadline(
          Deno.mkdir(dirOf(path), { recursive: true, mode: 0o755 }),
          {
            ms,
            what: `create "${dirOf(path)}"`,
          },
        );
        await statRegular(lockPath, lockRole);
      }
      file = await withDeadline(
        Deno.open(lockPath, {
          read: true,
          write: true,
          create: true,
          mode: 0o600,
        }),
        { ms, what: `open lock file "${lockPath}"` },
      );
    } catch (err) {
      if (err instanceof CniError) throw err;
      throw new CniError(
        CODES.ioFailure,
        `Cannot open lock file "${lockPath}"`,
        { cause: err },
      );
    }
    const after = await statRegular(lockPath, lockRole).catch((err) => {
      file.close();
      throw err;
    });
    if (
      after !== undefined && (before === undefined || sameFile(before, after))
    ) {
      return { file, id: after };
    }
    file.close();
    if (attempt >= OPEN_ATTEMPTS) {
      throw new CniError(
        CODES.ioFailure,
        `Cannot open lock file "${lockPath}": it was replaced ${attempt} times while being opened`,
      );
    }
  }
}

/**
 * Whether the locked file is still the file at the lock path: we never
 * delete the lock file, but the Go azure-vnet (v0.91, #17) deletes its
 * `<file>.lock` (the same path) on unlock. A flock on a deleted or
 * replaced file excludes nobody who opens the path now.
 */
async function stillAtPath(
  id: FileId,
  path: string,
  ms: number,
): Promise<boolean> {
  const now = await statRegular(`${path}.lock`, { ms, role: "lock file" });
  return now !== undefined && sameFile(id, now);
}

/**
 * Opens and flocks `${path}.lock`, within `timeoutMs` in all. When the
 * path names another file once the lock is held (the one locked was
 * deleted or replaced meanwhile), that lock is dropped and the file now
 * at the path is locked instead.
 *
 * @throws {CniError} Code 11 on timeout; code 5 on a file error.
 */
async function takeLock(
  path: string,
  opts: {
    timeoutMs: number;
    ms: number;
    sleep: ((ms: number) => Promise<void>) | undefined;
  },
): Promise<Deno.FsFile> {
  const deadline = performance.now() + opts.timeoutMs;
  for (let again = false;; again = true) {
    const { file: lockFile, id } = await openLockFile(path, opts.ms);
    try {
      await acquire(lockFile, {
        path,
        timeoutMs: opts.timeoutMs,
        waitMs: again
          ? Math.max(0, deadline - performance.now())
          : opts.timeoutMs,
        sleep: opts.sleep,
      });
      if (await stillAtPath(id, path, opts.ms)) return lockFile;
    } catch (err) {
      lockFile.close();
      if (err instanceof CniError) throw err;
      throw new CniError(
        CODES.ioFailure,
        `Cannot lock state file "${path}"`,
        { cause: err },
      );
    }
    lockFile.close();
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
    /** The whole wait's limit, for the message. */
    timeoutMs: number;
    /** What is left of it. */
    waitMs: number;
    sleep: ((ms: number) => Promise<void>) | undefined;
  },
): Promise<void> {
  const exclusive = true;
  if (await lockFile.tryLock(exclusive)) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = opts.sleep !== undefined
    ? opts.sleep(opts.waitMs).then(() => TIMED_OUT)
    : new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), opts.waitMs);
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
