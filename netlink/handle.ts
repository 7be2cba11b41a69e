/**
 * {@link NetlinkHandle}: a netlink route socket bound to one network
 * namespace, with the link, address, route and neighbour verbs as methods.
 *
 * @module
 */
import { libnl, NETLINK_ROUTE, nlCheck, type NlSock } from "./_ffi/libnl.ts";
import { addrAdd, addrDel, addrList } from "./addr.ts";
import {
  linkAddBridge,
  linkAddVeth,
  linkByIndex,
  linkByName,
  linkDel,
  linkDelSync,
  linkList,
  linkSetHairpin,
  linkSetMac,
  linkSetMaster,
  linkSetMtu,
  linkSetName,
  linkSetNetns,
  linkSetUp,
} from "./link.ts";
import { neighAdd, neighDel, neighList } from "./neigh.ts";
import { withNetns } from "./netns.ts";
import { routeAdd, routeDel, routeList } from "./route.ts";
import type {
  AddrInfo,
  BridgeSpec,
  LinkInfo,
  NeighInfo,
  NeighSpec,
  RouteInfo,
  RouteSpec,
  VethSpec,
} from "./types.ts";

/** Frees sockets whose handle was never closed (a leak net only). */
const LEAK_NET = new FinalizationRegistry<number | bigint>((address) => {
  const ptr = Deno.UnsafePointer.create(BigInt(address)) as NlSock | null;
  if (ptr !== null) libnl.need("nl_socket_free").nl_socket_free(ptr);
});

function connect(): NlSock {
  const f = libnl.need("nl_socket_alloc", "nl_socket_free", "nl_connect");
  const sock = f.nl_socket_alloc();
  if (sock === null) throw new RangeError("Cannot allocate netlink socket");
  const rc = f.nl_connect(sock, NETLINK_ROUTE);
  if (rc < 0) {
    f.nl_socket_free(sock);
    nlCheck(rc, { op: "connect", object: "netlink route socket" });
  }
  return sock;
}

/**
 * A netlink route socket bound to one network namespace.
 *
 * Open it in the current namespace with {@link NetlinkHandle.open} or in
 * another with {@link NetlinkHandle.openNetns}: the socket is created inside
 * the target and stays bound to it, so no method switches namespaces. Hold it
 * with `using`. Methods need CAP_NET_ADMIN in the socket's namespace for
 * changes; lookups need none. Names are checked (≤ 15 bytes) before any libnl
 * call. Lookups of absent objects throw `Deno.errors.NotFound`, creations of
 * existing ones `Deno.errors.AlreadyExists`, each with a
 * {@link NetlinkError} as `cause`.
 *
 * @tags allow-ffi
 * @example Usage
 * ```ts ignore
 * import { NetlinkHandle } from "@vnet/netlink";
 *
 * using nl = NetlinkHandle.openNetns("/var/run/netns/c1");
 * nl.linkSetUp("lo");
 * ```
 */
export class NetlinkHandle implements Disposable {
  #ptr: NlSock | null;

  private constructor(ptr: NlSock) {
    this.#ptr = ptr;
    LEAK_NET.register(this, Deno.UnsafePointer.value(ptr), this);
  }

  /**
   * Opens a handle in the current network namespace.
   *
   * @returns The handle.
   * @throws {NetlinkError} When the socket cannot connect.
   */
  static open(): NetlinkHandle {
    return new NetlinkHandle(connect());
  }

  /**
   * Opens a handle in another network namespace: the JS thread enters it,
   * connects the socket and switches back at once.
   *
   * @param nsPath `/var/run/netns/X` or `/proc/PID/ns/net`.
   * @returns The handle.
   * @throws {Deno.errors.NotFound} When `nsPath` does not exist.
   */
  static openNetns(nsPath: string): NetlinkHandle {
    return new NetlinkHandle(withNetns(nsPath, connect));
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.#ptr === null) return;
    LEAK_NET.unregister(this);
    libnl.need("nl_socket_free").nl_socket_free(this.#ptr);
    this.#ptr = null;
  }

  /** Same as {@link NetlinkHandle.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #sock(): NlSock {
    if (this.#ptr === null) {
      throw new TypeError("Cannot use netlink handle: closed");
    }
    return this.#ptr;
  }

  /**
   * Looks a link up by name. Equivalent to `ip link show NAME`.
   *
   * @param name The link name.
   * @returns The link.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkByName(name: string): LinkInfo {
    return linkByName(this.#sock(), name);
  }

  /**
   * Looks a link up by ifindex. Equivalent to `ip link show` by index.
   *
   * @param index The ifindex.
   * @returns The link.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkByIndex(index: number): LinkInfo {
    return linkByIndex(this.#sock(), index);
  }

  /**
   * Lists all links. Equivalent to `ip link show`.
   *
   * @returns The links.
   */
  linkList(): LinkInfo[] {
    return linkList(this.#sock());
  }

  /**
   * Creates a veth pair; with `peerNetns` the peer is created directly in
   * that namespace under its final name. Equivalent to
   * `ip link add NAME type veth peer name PEER netns NS`.
   *
   * @param spec The pair.
   * @throws {Deno.errors.AlreadyExists} When either name is taken.
   * @throws {Deno.errors.NotFound} When `peerNetns` does not exist.
   * @throws {RangeError} For a bad name or MTU.
   */
  linkAddVeth(spec: VethSpec): void {
    linkAddVeth(this.#sock(), spec);
  }

  /**
   * Creates a bridge. Equivalent to `ip link add NAME type bridge`.
   *
   * @param spec The bridge.
   * @throws {Deno.errors.AlreadyExists} When the name is taken.
   */
  linkAddBridge(spec: BridgeSpec): void {
    linkAddBridge(this.#sock(), spec);
  }

  /**
   * Deletes a link (a veth takes its peer along). Equivalent to
   * `ip link del NAME`.
   *
   * @param name The link name.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkDelSync(name: string): void {
    linkDelSync(this.#sock(), name);
  }

  /**
   * Deletes a link like {@link NetlinkHandle.linkDelSync}, while the JS
   * thread serves other work: the kernel's wait (about 20 ms for a veth)
   * happens on a thread of Deno's blocking pool. Do not use this handle
   * until the promise settles.
   *
   * @param name The link name.
   * @returns When the link is gone.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  async linkDel(name: string): Promise<void> {
    await linkDel(this.#sock(), name);
  }

  /**
   * Sets a link up. Equivalent to `ip link set NAME up`.
   *
   * @param name The link name.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkSetUp(name: string): void {
    linkSetUp(this.#sock(), name, { up: true });
  }

  /**
   * Sets a link down. Equivalent to `ip link set NAME down`.
   *
   * @param name The link name.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkSetDown(name: string): void {
    linkSetUp(this.#sock(), name, { up: false });
  }

  /**
   * Sets the MTU. Equivalent to `ip link set NAME mtu MTU`.
   *
   * @param name The link name.
   * @param mtu The MTU (68 ... 65535).
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkSetMtu(name: string, mtu: number): void {
    linkSetMtu(this.#sock(), name, { mtu });
  }

  /**
   * Sets the MAC. Equivalent to `ip link set NAME address MAC`.
   *
   * @param name The link name.
   * @param mac The MAC.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkSetMac(name: string, mac: string): void {
    linkSetMac(this.#sock(), name, { mac });
  }

  /**
   * Renames a link (do it while the link is down). Equivalent to
   * `ip link set NAME name NEW`.
   *
   * @param name The link name.
   * @param newName The new name.
   * @throws {Deno.errors.NotFound} When there is no such link.
   * @throws {Deno.errors.AlreadyExists} When `newName` is taken.
   */
  linkSetName(name: string, newName: string): void {
    linkSetName(this.#sock(), name, { newName });
  }

  /**
   * Enslaves a link to a bridge. Equivalent to
   * `ip link set NAME master MASTER`.
   *
   * @param name The link name.
   * @param master The bridge name.
   * @throws {Deno.errors.NotFound} When either link is absent.
   */
  linkSetMaster(name: string, master: string): void {
    linkSetMaster(this.#sock(), name, { master });
  }

  /**
   * Releases a link from its master. Equivalent to
   * `ip link set NAME nomaster`.
   *
   * @param name The link name.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkSetNoMaster(name: string): void {
    linkSetMaster(this.#sock(), name, { master: undefined });
  }

  /**
   * Sets the hairpin flag of a bridge port. Equivalent to
   * `bridge link set dev NAME hairpin on|off`.
   *
   * @param name The port (enslaved link) name.
   * @param options `on`: the flag value.
   * @throws {Deno.errors.NotFound} When there is no such link.
   */
  linkSetHairpin(name: string, options: { on: boolean }): void {
    linkSetHairpin(this.#sock(), name, options);
  }

  /**
   * Moves a link into another namespace (about 20 ms: the kernel waits for
   * RCU). Equivalent to `ip link set NAME netns NS`.
   *
   * @param name The link name.
   * @param nsPath The target netns path.
   * @throws {Deno.errors.NotFound} When the link or `nsPath` is absent.
   */
  linkSetNetns(name: string, nsPath: string): void {
    linkSetNetns(this.#sock(), name, { nsPath });
  }

  /**
   * Adds an address. Equivalent to `ip addr add CIDR dev LINK`, with
   * `nodad` to `... nodad`: an IPv6 address the kernel never marks
   * tentative, whatever `net.ipv6.conf.*.accept_dad` say.
   *
   * @param link The link name.
   * @param cidr `address/prefix`.
   * @param options `nodad`: skip duplicate address detection (IPv6).
   * @throws {Deno.errors.AlreadyExists} When the address is there.
   * @throws {Deno.errors.NotFound} When there is no such link.
   * @throws {SyntaxError} When `cidr` is unparsable.
   */
  addrAdd(
    link: string,
    cidr: string,
    options: { nodad?: boolean } = {},
  ): void {
    addrAdd(this.#sock(), { link, cidr, ...options });
  }

  /**
   * Deletes an address. Equivalent to `ip addr del CIDR dev LINK`.
   *
   * @param link The link name.
   * @param cidr `address/prefix`.
   * @throws {Deno.errors.NotFound} When the link or address is absent.
   */
  addrDel(link: string, cidr: string): void {
    addrDel(this.#sock(), { link, cidr });
  }

  /**
   * Lists addresses. Equivalent to `ip addr show [dev LINK]`.
   *
   * @param options `link` and `family` filters.
   * @returns The addresses.
   * @throws {Deno.errors.NotFound} When `link` is absent.
   */
  addrList(options: { link?: string; family?: 4 | 6 } = {}): AddrInfo[] {
    return addrList(this.#sock(), options);
  }

  /**
   * Adds a route. Equivalent to `ip route add DST via GW dev LINK ...`.
   *
   * @param spec The route.
   * @throws {Deno.errors.AlreadyExists} When the route exists.
   * @throws {Deno.errors.NotFound} When `link` is absent.
   */
  routeAdd(spec: RouteSpec): void {
    routeAdd(this.#sock(), spec, { replace: false });
  }

  /**
   * Adds or replaces a route. Equivalent to `ip route replace ...`.
   *
   * @param spec The route.
   * @throws {Deno.errors.NotFound} When `link` is absent.
   */
  routeReplace(spec: RouteSpec): void {
    routeAdd(this.#sock(), spec, { replace: true });
  }

  /**
   * Deletes a route. Equivalent to `ip route del ...`.
   *
   * @param spec The route (unset fields match anything).
   * @throws {Deno.errors.NotFound} When no route matches.
   */
  routeDel(spec: RouteSpec): void {
    routeDel(this.#sock(), spec);
  }

  /**
   * Lists routes of the main table (or `table`; 0 for all). Equivalent to
   * `ip route show [table T] [dev LINK]`. A multipath route gives one entry
   * per nexthop; with `link`, those of its nexthops on that link.
   *
   * @param options `family`, `table` and `link` filters.
   * @returns The routes.
   * @throws {Deno.errors.NotFound} When `link` is absent.
   */
  routeList(
    options: { family?: 4 | 6; table?: number; link?: string } = {},
  ): RouteInfo[] {
    return routeList(this.#sock(), options);
  }

  /**
   * Adds or replaces a permanent neighbour entry. Equivalent to
   * `ip neigh replace IP lladdr MAC dev LINK nud permanent`.
   *
   * @param spec The entry.
   * @throws {Deno.errors.NotFound} When `link` is absent.
   */
  neighSet(spec: NeighSpec): void {
    neighAdd(this.#sock(), spec, { replace: true });
  }

  /**
   * Adds a permanent neighbour entry. Equivalent to
   * `ip neigh add IP lladdr MAC dev LINK nud permanent`.
   *
   * @param spec The entry.
   * @throws {Deno.errors.AlreadyExists} When the entry exists.
   */
  neighAdd(spec: NeighSpec): void {
    neighAdd(this.#sock(), spec, { replace: false });
  }

  /**
   * Deletes a neighbour entry. Equivalent to `ip neigh del IP dev LINK`.
   *
   * @param spec The entry.
   * @throws {Deno.errors.NotFound} When the entry or link is absent.
   */
  neighDel(spec: { link: string; ip: string }): void {
    neighDel(this.#sock(), spec);
  }

  /**
   * Lists IPv4/IPv6 neighbour entries. Equivalent to
   * `ip neigh show [dev LINK]`.
   *
   * @param options `link` filter.
   * @returns The entries.
   */
  neighList(options: { link?: string } = {}): NeighInfo[] {
    return neighList(this.#sock(), options);
  }
}
