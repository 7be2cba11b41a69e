/**
 * Per-namespace sysctls through `/proc/sys`, read and written with sync
 * libc calls inside {@link withNetns}: `/proc/sys/net` resolves against the
 * namespace of the thread that opens the file.
 *
 * libc, not `Deno.readTextFileSync`: Deno 2.9 demands `--allow-all` for any
 * file under `/proc/sys` ("Requires all access"), even with
 * `--allow-read=/proc/sys`, so the plugins' scoped permissions could not
 * reach it. Through FFI, `--allow-ffi` suffices.
 *
 * @module
 */
import { cstr } from "./_ffi/_lazy.ts";
import { errno, libc, O_WRONLY_CLOEXEC, strerror } from "./_ffi/libc.ts";
import { mapNetlinkError, NetlinkError } from "./errors.ts";
import { readProcText } from "./_proc.ts";
import { withNetns } from "./netns.ts";

const KEY = /^[A-Za-z0-9_][A-Za-z0-9_.\-/]*$/;

function sysctlPath(key: string): string {
  if (typeof key !== "string") {
    throw new TypeError("Cannot use sysctl key: not a string");
  }
  if (!KEY.test(key) || key.split(/[./]/).some((p) => p === "" || p === "..")) {
    throw new RangeError(`Cannot use sysctl key "${key}": invalid`);
  }
  // "net.ipv4.conf.eth0.proxy_arp" uses dots; a key with "/" is a path, so
  // names with dots (VLANs) can be given as "net/ipv4/conf/eth0.1/proxy_arp".
  return `/proc/sys/${key.includes("/") ? key : key.replaceAll(".", "/")}`;
}

function sysctlError(op: string, key: string, code: number): Error {
  const error = mapNetlinkError(
    new NetlinkError(`${op} sysctl`, key, {
      nlCode: 0,
      nlMessage: strerror(code),
      errno: code,
    }),
  );
  return error;
}

const SYMBOLS = ["open", "close", "write", "__errno_location"] as const;

/** Reads a `/proc/sys` file with sync libc calls. */
function readProc(path: string, key: string): string {
  return readProcText(path, (code) => sysctlError("read", key, code));
}

/** Writes a `/proc/sys` file with sync libc calls. */
function writeProc(path: string, key: string, value: string): void {
  const f = libc.need(...SYMBOLS);
  const fd = f.open(cstr(path), O_WRONLY_CLOEXEC);
  if (fd < 0) throw sysctlError("write", key, errno());
  try {
    const data = new TextEncoder().encode(value);
    const n = Number(f.write(fd, data, BigInt(data.length)));
    if (n < 0) throw sysctlError("write", key, errno());
    if (n !== data.length) {
      throw new RangeError(`Cannot write sysctl "${key}": short write`);
    }
  } finally {
    f.close(fd);
  }
}

/**
 * Reads a sysctl, in a netns or in the current one.
 *
 * @tags allow-ffi
 * @param nsPath A netns path, or `undefined` for the current namespace.
 * @param key The key, such as `net.ipv4.conf.eth0.proxy_arp`.
 * @returns The value, trimmed.
 * @throws {Deno.errors.NotFound} When the key or the netns does not exist.
 * @throws {RangeError} When the key is malformed.
 *
 * @example Usage
 * ```ts ignore
 * import { sysctlGet } from "@vnet/netlink";
 *
 * const v = sysctlGet("/var/run/netns/c1", "net.ipv4.ip_forward"); // "0"
 * ```
 */
export function sysctlGet(nsPath: string | undefined, key: string): string {
  const path = sysctlPath(key);
  function read(): string {
    return readProc(path, key);
  }
  return nsPath === undefined ? read() : withNetns(nsPath, read);
}

/**
 * Writes a sysctl, in a netns or in the current one. Requires CAP_NET_ADMIN
 * (and CAP_SYS_ADMIN to enter the netns).
 *
 * @tags allow-ffi
 * @param nsPath A netns path, or `undefined` for the current namespace.
 * @param key The key, such as `net.ipv4.conf.eth0.proxy_arp`.
 * @param value The value, such as `"1"`.
 * @throws {Deno.errors.NotFound} When the key or the netns does not exist.
 * @throws {RangeError} When the key is malformed.
 *
 * @example Usage
 * ```ts ignore
 * import { sysctlSet } from "@vnet/netlink";
 *
 * sysctlSet("/var/run/netns/c1", "net.ipv4.conf.eth0.proxy_arp", "1");
 * ```
 */
// deno-lint-ignore vnet/max-positional-params -- the agreed public shape (issue #3)
export function sysctlSet(
  nsPath: string | undefined,
  key: string,
  value: string,
): void {
  const path = sysctlPath(key);
  function write(): void {
    writeProc(path, key, value);
  }
  if (nsPath === undefined) write();
  else withNetns(nsPath, write);
}
