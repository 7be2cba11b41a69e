/**
 * Link verbs over an `nl_sock`: get, list, add (veth, bridge), delete and
 * change. {@link NetlinkHandle} exposes them as methods.
 *
 * @module
 */
import { kernelMac } from "@vnet/address";
import { cstr, readCString } from "./_ffi/_lazy.ts";
import {
  ADDR_SYMBOLS,
  AF_BRIDGE,
  AF_LLC,
  AF_UNSPEC,
  libnl,
  nlAddrText,
  nlCheck,
  NLE_CODES,
  nlError,
  NLM_F_CREATE,
  NLM_F_EXCL,
  type NlSock,
  nonNull,
  type OpName,
  parseNlAddr,
} from "./_ffi/libnl.ts";
import { DUMP_SYMBOLS, dumpObjects, RTM_GETLINK } from "./_ffi/dump.ts";
import {
  IFF_UP,
  libnlRoute,
  RTNL_BRIDGE_HAIRPIN_MODE,
} from "./_ffi/libnl_route.ts";
import { NetnsFd } from "./netns.ts";
import type { BridgeSpec, LinkInfo, OperState, VethSpec } from "./types.ts";

const IFNAMSIZ_MAX = 15;
const BAD_NAME_CHAR = /[/:\s]/;

/**
 * Checks an interface name the way the kernel does, before any libnl call
 * (libnl truncates longer names silently).
 *
 * @param name The interface name.
 * @throws {TypeError} When `name` is not a string or has `/`, `:` or
 *   whitespace in it.
 * @throws {RangeError} When `name` is empty, `.`, `..` or longer than 15
 *   bytes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateIfName } from "@vnet/netlink";
 *
 * validateIfName("eth0");
 * assert.throws(() => validateIfName("a-very-long-name"), { name: "RangeError" });
 * ```
 */
export function validateIfName(name: string): void {
  if (typeof name !== "string") {
    throw new TypeError("Cannot use interface name: not a string");
  }
  const bytes = new TextEncoder().encode(name).length;
  if (bytes === 0 || bytes > IFNAMSIZ_MAX) {
    throw new RangeError(
      `Cannot use interface name "${name}": ${bytes} bytes, allowed 1 to ${IFNAMSIZ_MAX}`,
    );
  }
  if (name === "." || name === "..") {
    throw new RangeError(`Cannot use interface name "${name}": reserved`);
  }
  if (BAD_NAME_CHAR.test(name)) {
    throw new TypeError(
      `Cannot use interface name "${name}": contains '/', ':' or whitespace`,
    );
  }
}

/**
 * Checks an MTU (68 ... 65535) before any libnl call.
 *
 * @param mtu The MTU.
 * @throws {RangeError} When out of range or not an integer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { validateMtu } from "@vnet/netlink";
 *
 * validateMtu(1500);
 * assert.throws(() => validateMtu(67), { name: "RangeError" });
 * ```
 */
export function validateMtu(mtu: number): void {
  if (!Number.isInteger(mtu) || mtu < 68 || mtu > 65535) {
    throw new RangeError(`Cannot use MTU ${mtu}: allowed 68 to 65535`);
  }
}

const OPER_STATES: readonly OperState[] = [
  "unknown",
  "notpresent",
  "down",
  "lowerlayerdown",
  "testing",
  "dormant",
  "up",
];

/**
 * Symbols of a link lookup by name. Verbs bind them together with their own
 * in one `need()`: each `dlopen` call costs about 0.3 ms on top of 0.1 ms per
 * symbol.
 */
export const LOOKUP_SYMBOLS = [
  "rtnl_link_get_kernel",
  "rtnl_link_put",
  "rtnl_link_get_ifindex",
] as const;

/** Symbols of {@link linkChange}. */
const CHANGE_SYMBOLS = [
  ...LOOKUP_SYMBOLS,
  "rtnl_link_alloc",
  "rtnl_link_change",
  "rtnl_link_set_family",
] as const;

/** Symbols of a link read-out. */
export const READ_SYMBOLS = [
  "rtnl_link_get_ifindex",
  "rtnl_link_get_name",
  "rtnl_link_get_type",
  "rtnl_link_get_flags",
  "rtnl_link_get_mtu",
  "rtnl_link_get_master",
  "rtnl_link_get_link",
  "rtnl_link_get_addr",
  "rtnl_link_get_operstate",
] as const;

/**
 * Symbols of a dump of all links and its read-out (the same as a lookup's:
 * the dump itself is libnl-3's, {@link DUMP_SYMBOLS}).
 */
export const LIST_LINK_SYMBOLS = READ_SYMBOLS;

/** libnl symbols of a link read-out (its MAC as text). */
const READ_TEXT_SYMBOLS = ["nl_addr2str", "nl_addr_get_len"] as const;

/** Reads a borrowed `rtnl_link` into a {@link LinkInfo}. */
function readLink(link: Deno.PointerObject): LinkInfo {
  const r = libnlRoute.need(...READ_SYMBOLS);
  const oper = OPER_STATES[r.rtnl_link_get_operstate(link)];
  return {
    index: r.rtnl_link_get_ifindex(link),
    name: readCString(r.rtnl_link_get_name(link)),
    mac: nlAddrText(r.rtnl_link_get_addr(link)) ?? "",
    mtu: r.rtnl_link_get_mtu(link),
    up: (r.rtnl_link_get_flags(link) & IFF_UP) !== 0,
    masterIndex: r.rtnl_link_get_master(link),
    peerIndex: r.rtnl_link_get_link(link),
    type: readCString(r.rtnl_link_get_type(link)),
    ...(oper === undefined ? {} : { operState: oper }),
  };
}

/** Fetches a link from the kernel by name (a +1 reference: put it). */
export function kernelLink(sock: NlSock, name: string): Deno.PointerObject {
  validateIfName(name);
  const r = libnlRoute.need("rtnl_link_get_kernel", "rtnl_link_put");
  const out = new BigUint64Array(1);
  nlCheck(r.rtnl_link_get_kernel(sock, 0, cstr(name), out), {
    op: "find link",
    object: name,
  });
  return nonNull(Deno.UnsafePointer.create(out[0] ?? 0n));
}

/** Adopts a {@link kernelLink} result into `stack`. */
export function adoptLink(
  stack: DisposableStack,
  link: Deno.PointerObject,
): Deno.PointerObject {
  return stack.adopt(link, libnlRoute.need("rtnl_link_put").rtnl_link_put);
}

/** The ifindex of a link. */
export function linkIndex(sock: NlSock, name: string): number {
  const r = libnlRoute.need("rtnl_link_get_ifindex");
  using stack = new DisposableStack();
  return r.rtnl_link_get_ifindex(adoptLink(stack, kernelLink(sock, name)));
}

/** `ip link show NAME`. */
export function linkByName(sock: NlSock, name: string): LinkInfo {
  libnlRoute.need(...LOOKUP_SYMBOLS, ...READ_SYMBOLS);
  libnl.need(...READ_TEXT_SYMBOLS);
  using stack = new DisposableStack();
  return readLink(adoptLink(stack, kernelLink(sock, name)));
}

/** `ip link show` by ifindex. */
export function linkByIndex(sock: NlSock, index: number): LinkInfo {
  if (!Number.isInteger(index) || index <= 0) {
    throw new RangeError(`Cannot find link ${index}: bad ifindex`);
  }
  libnl.need(...READ_TEXT_SYMBOLS);
  using stack = new DisposableStack();
  const r = libnlRoute.need(...LOOKUP_SYMBOLS, ...READ_SYMBOLS);
  const out = new BigUint64Array(1);
  nlCheck(r.rtnl_link_get_kernel(sock, index, null, out), {
    op: "find link",
    object: String(index),
  });
  const link = stack.adopt(
    nonNull(Deno.UnsafePointer.create(out[0] ?? 0n)),
    r.rtnl_link_put,
  );
  return readLink(link);
}

/** `ip link show` (all links). */
export function linkList(sock: NlSock): LinkInfo[] {
  libnl.need(...DUMP_SYMBOLS);
  libnlRoute.need(...LIST_LINK_SYMBOLS);
  return dumpObjects<LinkInfo>(sock, {
    type: RTM_GETLINK,
    family: AF_UNSPEC,
    what: { op: "list", object: "links" },
    read: (obj, out) => out.push(readLink(obj)),
  });
}

/**
 * The link filter of a list verb (`ip addr|route|neigh show dev LINK`) and
 * the names its entries are reported with: filtered to one link, that
 * link's name only; unfiltered, every link's from one dump. A node with a
 * veth per pod makes that dump cost as much as the list itself, so a
 * filtered list does without it.
 *
 * @param sock The socket.
 * @param link The filter's link name, if any.
 * @returns The filter's ifindex (undefined: all links) and the names.
 * @throws {Deno.errors.NotFound} When the filter's link does not exist.
 */
export function listFilter(
  sock: NlSock,
  link: string | undefined,
): { only: number | undefined; names: Map<number, string> } {
  if (link === undefined) {
    return {
      only: undefined,
      names: new Map(linkList(sock).map((l) => [l.index, l.name])),
    };
  }
  const only = linkIndex(sock, link);
  return { only, names: new Map([[only, link]]) };
}

function setMac(
  stack: DisposableStack,
  link: Deno.PointerObject,
  mac: string,
  what: OpName,
): void {
  const addr = parseNlAddr(stack, kernelMac(mac), { family: AF_LLC, what });
  libnlRoute.need("rtnl_link_set_addr").rtnl_link_set_addr(link, addr);
}

/** `ip link add NAME type veth peer PEER [netns NS]`. */
export function linkAddVeth(sock: NlSock, spec: VethSpec): void {
  validateIfName(spec.name);
  validateIfName(spec.peerName);
  if (spec.mtu !== undefined) validateMtu(spec.mtu);
  if (spec.peerMtu !== undefined) validateMtu(spec.peerMtu);
  if (spec.mac !== undefined) kernelMac(spec.mac);
  if (spec.peerMac !== undefined) kernelMac(spec.peerMac);
  const what = { op: "add veth", object: spec.name };
  const r = libnlRoute.need(
    "rtnl_link_veth_alloc",
    "rtnl_link_veth_get_peer",
    "rtnl_link_put",
    "rtnl_link_set_name",
    "rtnl_link_set_mtu",
    "rtnl_link_set_ns_fd",
    "rtnl_link_add",
  );
  using stack = new DisposableStack();
  const link = stack.adopt(nonNull(r.rtnl_link_veth_alloc()), r.rtnl_link_put);
  const peer = stack.adopt(
    nonNull(r.rtnl_link_veth_get_peer(link)),
    r.rtnl_link_put,
  );
  r.rtnl_link_set_name(link, cstr(spec.name));
  r.rtnl_link_set_name(peer, cstr(spec.peerName));
  if (spec.mtu !== undefined) r.rtnl_link_set_mtu(link, spec.mtu);
  const peerMtu = spec.peerMtu ?? spec.mtu;
  if (peerMtu !== undefined) r.rtnl_link_set_mtu(peer, peerMtu);
  if (spec.mac !== undefined) setMac(stack, link, spec.mac, what);
  if (spec.peerMac !== undefined) setMac(stack, peer, spec.peerMac, what);
  if (spec.peerNetns !== undefined) {
    const ns = stack.use(NetnsFd.open(spec.peerNetns));
    r.rtnl_link_set_ns_fd(peer, ns.fd);
  }
  const rc = r.rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL);
  if (rc === -NLE_CODES.EXIST && !linkExists(sock, spec.name)) {
    // The kernel says EEXIST for either side: name the peer when the host
    // side is free, so callers can tell "interface exists in container".
    throw nlError(rc, {
      op: "add veth peer",
      object: spec.peerNetns === undefined
        ? spec.peerName
        : `${spec.peerName}" in netns "${spec.peerNetns}`,
    });
  }
  nlCheck(rc, what);
}

function linkExists(sock: NlSock, name: string): boolean {
  try {
    libnlRoute.need("rtnl_link_put").rtnl_link_put(kernelLink(sock, name));
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** `ip link add NAME type bridge`. */
export function linkAddBridge(sock: NlSock, spec: BridgeSpec): void {
  validateIfName(spec.name);
  if (spec.mtu !== undefined) validateMtu(spec.mtu);
  if (spec.mac !== undefined) kernelMac(spec.mac);
  const what = { op: "add bridge", object: spec.name };
  const r = libnlRoute.need(
    "rtnl_link_alloc",
    "rtnl_link_put",
    "rtnl_link_set_name",
    "rtnl_link_set_type",
    "rtnl_link_set_mtu",
    "rtnl_link_add",
  );
  using stack = new DisposableStack();
  const link = stack.adopt(nonNull(r.rtnl_link_alloc()), r.rtnl_link_put);
  nlCheck(r.rtnl_link_set_type(link, cstr("bridge")), what);
  r.rtnl_link_set_name(link, cstr(spec.name));
  if (spec.mtu !== undefined) r.rtnl_link_set_mtu(link, spec.mtu);
  if (spec.mac !== undefined) setMac(stack, link, spec.mac, what);
  nlCheck(r.rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL), what);
}

/** `ip link del NAME`. */
export function linkDelSync(sock: NlSock, name: string): void {
  validateIfName(name);
  const r = libnlRoute.need(
    "rtnl_link_alloc",
    "rtnl_link_put",
    "rtnl_link_set_name",
    "rtnl_link_delete",
  );
  using stack = new DisposableStack();
  const link = stack.adopt(nonNull(r.rtnl_link_alloc()), r.rtnl_link_put);
  r.rtnl_link_set_name(link, cstr(name));
  nlCheck(r.rtnl_link_delete(sock, link), { op: "delete link", object: name });
}

/**
 * `ip link del NAME`, the kernel's wait (a veth's deletion takes about
 * 20 ms of RCU grace periods) off the JS thread: `rtnl_link_delete` runs
 * on a thread of the blocking pool. The socket must not be used until it
 * settles.
 */
export async function linkDel(sock: NlSock, name: string): Promise<void> {
  validateIfName(name);
  const r = libnlRoute.need(
    "rtnl_link_alloc",
    "rtnl_link_put",
    "rtnl_link_set_name",
  );
  const { rtnl_link_delete: del } = libnlRoute.needNonblocking(
    "rtnl_link_delete",
  );
  using stack = new DisposableStack();
  const link = stack.adopt(nonNull(r.rtnl_link_alloc()), r.rtnl_link_put);
  const nameBuf = cstr(name);
  r.rtnl_link_set_name(link, nameBuf);
  nlCheck(await del(sock, link), { op: "delete link", object: name });
}

/** What a link change does to the `changes` object. */
export type LinkChange = (
  changes: Deno.PointerObject,
  stack: DisposableStack,
) => void;

/**
 * Applies a change to a link: fetch it, fill a `changes` object,
 * `rtnl_link_change`.
 */
export function linkChange(
  sock: NlSock,
  name: string,
  options: { op: string; change: LinkChange; family?: number },
): void {
  const r = libnlRoute.need(...CHANGE_SYMBOLS);
  using stack = new DisposableStack();
  const orig = adoptLink(stack, kernelLink(sock, name));
  const changes = stack.adopt(nonNull(r.rtnl_link_alloc()), r.rtnl_link_put);
  if (options.family !== undefined) {
    r.rtnl_link_set_family(orig, options.family);
    r.rtnl_link_set_family(changes, options.family);
  }
  options.change(changes, stack);
  nlCheck(r.rtnl_link_change(sock, orig, changes, 0), {
    op: options.op,
    object: name,
  });
}

/** `ip link set NAME up|down`. */
export function linkSetUp(
  sock: NlSock,
  name: string,
  options: { up: boolean },
): void {
  // Only the setter this call uses: every bound symbol costs about 0.2 ms.
  libnlRoute.need(
    ...CHANGE_SYMBOLS,
    options.up ? "rtnl_link_set_flags" : "rtnl_link_unset_flags",
  );
  linkChange(sock, name, {
    op: options.up ? "set link up" : "set link down",
    change(changes) {
      if (options.up) {
        libnlRoute.need("rtnl_link_set_flags").rtnl_link_set_flags(
          changes,
          IFF_UP,
        );
      } else {
        libnlRoute.need("rtnl_link_unset_flags").rtnl_link_unset_flags(
          changes,
          IFF_UP,
        );
      }
    },
  });
}

/** `ip link set NAME mtu MTU`. */
export function linkSetMtu(
  sock: NlSock,
  name: string,
  options: { mtu: number },
): void {
  validateMtu(options.mtu);
  const r = libnlRoute.need(...CHANGE_SYMBOLS, "rtnl_link_set_mtu");
  linkChange(sock, name, {
    op: `set mtu ${options.mtu} on link`,
    change: (changes) => r.rtnl_link_set_mtu(changes, options.mtu),
  });
}

/** `ip link set NAME address MAC`. */
export function linkSetMac(
  sock: NlSock,
  name: string,
  options: { mac: string },
): void {
  const mac = kernelMac(options.mac);
  libnlRoute.need(...CHANGE_SYMBOLS, "rtnl_link_set_addr");
  libnl.need(...ADDR_SYMBOLS);
  const what = { op: `set mac ${mac} on link`, object: name };
  linkChange(sock, name, {
    op: what.op,
    change: (changes, stack) => setMac(stack, changes, mac, what),
  });
}

/** `ip link set NAME name NEW`. */
export function linkSetName(
  sock: NlSock,
  name: string,
  options: { newName: string },
): void {
  validateIfName(options.newName);
  const r = libnlRoute.need(...CHANGE_SYMBOLS, "rtnl_link_set_name");
  linkChange(sock, name, {
    op: "rename link",
    change: (changes) => r.rtnl_link_set_name(changes, cstr(options.newName)),
  });
}

/** `ip link set NAME master BR` (`masterIndex` 0: `nomaster`). */
export function linkSetMaster(
  sock: NlSock,
  name: string,
  options: { master: string | undefined },
): void {
  const r = libnlRoute.need(...CHANGE_SYMBOLS, "rtnl_link_set_master");
  let masterIndex = 0;
  if (options.master !== undefined) {
    masterIndex = linkIndex(sock, options.master);
  }
  linkChange(sock, name, {
    op: options.master === undefined
      ? "release link"
      : `set master "${options.master}" on link`,
    change: (changes) => r.rtnl_link_set_master(changes, masterIndex),
  });
}

/** `ip link set NAME type bridge_slave hairpin on|off`. */
export function linkSetHairpin(
  sock: NlSock,
  name: string,
  options: { on: boolean },
): void {
  // Only the setter this call uses: every bound symbol costs about 0.2 ms.
  libnlRoute.need(
    ...CHANGE_SYMBOLS,
    options.on ? "rtnl_link_bridge_set_flags" : "rtnl_link_bridge_unset_flags",
  );
  const what = {
    op: `set hairpin ${options.on ? "on" : "off"} on link`,
    object: name,
  };
  linkChange(sock, name, {
    op: what.op,
    family: AF_BRIDGE,
    change(changes) {
      nlCheck(
        options.on
          ? libnlRoute.need("rtnl_link_bridge_set_flags")
            .rtnl_link_bridge_set_flags(changes, RTNL_BRIDGE_HAIRPIN_MODE)
          : libnlRoute.need("rtnl_link_bridge_unset_flags")
            .rtnl_link_bridge_unset_flags(changes, RTNL_BRIDGE_HAIRPIN_MODE),
        what,
      );
    },
  });
}

/** `ip link set NAME netns NS`. */
export function linkSetNetns(
  sock: NlSock,
  name: string,
  options: { nsPath: string },
): void {
  const r = libnlRoute.need(...CHANGE_SYMBOLS, "rtnl_link_set_ns_fd");
  using ns = NetnsFd.open(options.nsPath);
  linkChange(sock, name, {
    op: "move to another netns link",
    change: (changes) => r.rtnl_link_set_ns_fd(changes, ns.fd),
  });
}
