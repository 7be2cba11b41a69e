/**
 * A process as `/proc/<pid>/stat` shows it: name, state and start time,
 * read with sync libc calls (`_proc.ts`), so that a caller can tell
 * whether the PID a lock file names is still the program that wrote it.
 *
 * @module
 */
import { ERRNO, strerror } from "./_ffi/libc.ts";
import { readProcText } from "./_proc.ts";
import { mapNetlinkError, NetlinkError } from "./errors.ts";

/** `ESRCH`: the process went while its files were read. */
const ESRCH = 3;

/**
 * Clock ticks per second of `/proc`'s times (`USER_HZ`, part of the
 * kernel's ABI: 100 on every architecture Linux runs us on).
 */
const USER_HZ = 100;

/** A process, as {@link processInfo} reads it. */
export interface ProcessInfo {
  /** Its name (`comm`: the executable's base name, at most 15 bytes). */
  readonly name: string;
  /** Its state letter (`R`, `S`, `D`, ...; `Z` zombie, `X` dead). */
  readonly state: string;
  /** When it started, in ms since the epoch (to about 10 ms). */
  readonly startedAt: number;
}

function procError(path: string, code: number): Error {
  if (code === ERRNO.ENOENT || code === ESRCH) {
    return new Deno.errors.NotFound(`No process file "${path}"`);
  }
  return mapNetlinkError(
    new NetlinkError("read", path, {
      nlCode: 0,
      nlMessage: strerror(code),
      errno: code,
    }),
  );
}

function read(path: string): string {
  return readProcText(path, (code) => procError(path, code));
}

/**
 * The process with PID `pid`: its name, state and start time, from
 * `/proc/<pid>/stat` (and `/proc/uptime` for the boot time). Sees the
 * processes of the caller's PID namespace.
 *
 * @tags allow-ffi
 * @param pid The PID.
 * @returns The process, or undefined when no process has that PID.
 * @throws {RangeError} When `pid` is no positive integer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { processInfo } from "./process.ts";
 * const me = processInfo(Deno.pid);
 * assert.ok(me !== undefined && me.startedAt <= Date.now());
 * ```
 */
export function processInfo(pid: number): ProcessInfo | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) {
    throw new RangeError(`Cannot look up process ${pid}: no PID`);
  }
  let stat: string;
  let uptime: string;
  try {
    stat = read(`/proc/${pid}/stat`);
    uptime = read("/proc/uptime");
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const now = Date.now();
  // "<pid> (<comm>) <state> <ppid> ...": comm may hold blanks and ")".
  const open = stat.indexOf("(");
  const close = stat.lastIndexOf(")");
  const fields = stat.slice(close + 2).split(" ");
  // starttime is field 22 of the line, the 20th after the name.
  const startTicks = Number(fields[19]);
  const upSeconds = Number(uptime.split(" ")[0]);
  if (open < 0 || close < open || !Number.isFinite(startTicks)) {
    throw new SyntaxError(`Cannot parse "/proc/${pid}/stat": ${stat}`);
  }
  return {
    name: stat.slice(open + 1, close),
    state: fields[0] ?? "",
    startedAt: Math.round(now - (upSeconds - startTicks / USER_HZ) * 1000),
  };
}
