/**
 * A symbolic link's target, read with libc's `readlink()`: the way to read
 * the links under `/proc` (`/proc/self/ns/mnt`, or a file of the host's
 * tree through `/proc/1/root` when the caller shares the host's PID
 * namespace), which Deno's file APIs refuse to anything short of
 * `--allow-all` (`docs/STYLE.md` section 6). Through FFI, `--allow-ffi`
 * suffices.
 *
 * @module
 */
import { cstr } from "./_ffi/_lazy.ts";
import { ERRNO, errno, libc, strerror } from "./_ffi/libc.ts";
import { mapNetlinkError, NetlinkError } from "./errors.ts";

/** `PATH_MAX`: no link target is longer. */
const PATH_MAX = 4096;

/**
 * Reads the target of the symbolic link `path`, as `readlink(2)` gives it
 * (not resolved further: a relative target is relative to the link's
 * directory). The path's leading components are resolved by the kernel,
 * `/proc`'s magic links included.
 *
 * Equivalent to `readlink PATH`.
 *
 * @tags allow-ffi
 * @param path The link.
 * @returns The target, or undefined when `path` exists and is no symbolic
 *   link.
 * @throws {Deno.errors.NotFound} When `path` or one of its directories does
 *   not exist.
 * @throws {Deno.errors.PermissionDenied} When a directory may not be
 *   searched (`/proc/1/root` of a process the caller may not trace).
 * @throws {NetlinkError} For any other failure, with its errno.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readLink } from "./read_link.ts";
 * assert.match(readLink("/proc/self/ns/net") ?? "", /^net:\[\d+\]$/);
 * assert.equal(readLink("/proc/self/stat"), undefined);
 * ```
 */
export function readLink(path: string): string | undefined {
  const f = libc.need("readlink", "__errno_location", "strerror");
  const buf = new Uint8Array(PATH_MAX);
  const n = Number(f.readlink(cstr(path), buf, BigInt(buf.length)));
  if (n >= 0) return new TextDecoder().decode(buf.subarray(0, n));
  const code = errno();
  if (code === ERRNO.EINVAL) return undefined;
  const err = new NetlinkError("readlink", path, {
    nlCode: 0,
    nlMessage: strerror(code),
    errno: code,
  });
  // ENOTDIR: a component is no directory, so the path is not there.
  if (code === ERRNO.ENOTDIR) {
    throw new Deno.errors.NotFound(err.message, { cause: err });
  }
  throw mapNetlinkError(err);
}
