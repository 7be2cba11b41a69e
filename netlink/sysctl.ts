/**
 * Per-namespace sysctls through `/proc/sys`, read and written with `*Sync`
 * calls inside {@link withNetns}: `/proc/sys/net` resolves against the
 * namespace of the thread that opens the file.
 *
 * @module
 */
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

function mapSysctlError(e: unknown, op: string, key: string): unknown {
  if (e instanceof Deno.errors.NotFound) {
    return new Deno.errors.NotFound(
      `Cannot ${op} sysctl "${key}": no such key`,
      {
        cause: e,
      },
    );
  }
  return e;
}

/**
 * Reads a sysctl, in a netns or in the current one.
 *
 * @tags allow-ffi, allow-read
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
    try {
      return Deno.readTextFileSync(path).trim();
    } catch (e) {
      throw mapSysctlError(e, "read", key);
    }
  }
  return nsPath === undefined ? read() : withNetns(nsPath, read);
}

/**
 * Writes a sysctl, in a netns or in the current one. Requires CAP_NET_ADMIN
 * (and CAP_SYS_ADMIN to enter the netns).
 *
 * @tags allow-ffi, allow-write
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
    try {
      Deno.writeTextFileSync(path, value);
    } catch (e) {
      throw mapSysctlError(e, "write", key);
    }
  }
  if (nsPath === undefined) write();
  else withNetns(nsPath, write);
}
