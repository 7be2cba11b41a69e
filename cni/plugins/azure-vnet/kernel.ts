/**
 * The kernel operations the plugin needs, as one narrow port. The real
 * implementation (`netlink_kernel.ts`) sits on `@vnet/netlink`; unit tests
 * may pass a fake. Lookups return undefined for "absent"; deletions of
 * absent objects succeed. The port depends on nothing else of the plugin;
 * the state model (`state.ts`) takes {@link SavedRoute} from here.
 *
 * @module
 */

/**
 * A route as the plugin records it: taken off the master, to be restored on
 * teardown (the state file keeps these), and the base of {@link RouteState}.
 */
export interface SavedRoute {
  /** Destination CIDR (`0.0.0.0/0` for the default route). */
  dst: string;
  /** Gateway, if any. */
  gw?: string;
  /** Routing table (254 = main). */
  table?: number;
  /** Protocol: a name (`static`, `dhcp`…) or a number. */
  protocol?: string | number;
  /** Metric (priority). */
  metric?: number;
  /** Scope: a name (`global`, `link`…) or a number. */
  scope?: string | number;
  /** Preferred source. */
  src?: string;
  /** True for `onlink`. */
  onlink?: boolean;
}

/** A link as the plugin sees it. */
export interface LinkState {
  /** The name. */
  readonly name: string;
  /** The ifindex. */
  readonly index: number;
  /** The MAC (lower case). */
  readonly mac: string;
  /** The MTU. */
  readonly mtu: number;
  /** True when administratively up. */
  readonly up: boolean;
  /** The master's ifindex, or undefined. */
  readonly masterIndex: number | undefined;
  /** The link kind (`bridge`, `veth`…), or undefined. */
  readonly kind: string | undefined;
  /**
   * For a veth, the ifindex of its peer (in the peer's namespace), or
   * undefined.
   */
  readonly peerIndex: number | undefined;
}

/** An address on a link. */
export interface AddrState {
  /** CIDR, `10.0.0.4/24`. */
  readonly cidr: string;
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** 0 global, 253 link, 254 host. */
  readonly scope: number;
}

/** A neighbour entry on a link. */
export interface NeighState {
  /** The IP address. */
  readonly ip: string;
  /** The MAC (lower case), when known. */
  readonly mac: string | undefined;
  /** True for a permanent (static) entry. */
  readonly permanent: boolean;
}

/** A route bound to a link. */
export interface RouteState extends SavedRoute {
  /** The output link name. */
  readonly link: string;
}

/** A veth to create with its peer directly inside another netns. */
export interface VethSpec {
  /** Host-side name. */
  readonly name: string;
  /** Peer name inside the netns. */
  readonly peerName: string;
  /** The netns path of the peer. */
  readonly peerNetns: string;
  /** The MTU of both ends. */
  readonly mtu: number;
}

/** The kernel operations in one network namespace. */
export interface KernelNs extends Disposable {
  /** Looks a link up by name. */
  link(name: string): LinkState | undefined;
  /** Every link. */
  links(): LinkState[];
  /** The addresses of a link (both families). */
  addrs(link: string): AddrState[];
  /** The routes whose output link is `link`, in every table. */
  routes(link: string): RouteState[];
  /** Creates a bridge with a pinned MAC and an MTU. */
  addBridge(spec: { name: string; mtu: number; mac: string }): void;
  /** Creates a veth whose peer lives in another netns. */
  addVeth(spec: VethSpec): void;
  /** Deletes a link; absent is fine. */
  delLinkSync(name: string): void;
  /**
   * Deletes a link; absent is fine. The kernel's wait (a veth takes about
   * 20 ms) does not hold up the JS thread; use no other method of this
   * handle until it settles.
   */
  delLink(name: string): Promise<void>;
  /** Brings a link up. */
  setUp(name: string): void;
  /** Brings a link down. */
  setDown(name: string): void;
  /** Enslaves a link to a bridge, or releases it (`master` undefined). */
  setMaster(name: string, master: string | undefined): void;
  /** Sets the bridge-port hairpin flag. */
  setHairpin(name: string, options: { on: boolean }): void;
  /**
   * Adds an address; an existing one is fine. `nodad`: an IPv6 address the
   * kernel never marks tentative (no duplicate address detection).
   */
  addrAdd(link: string, cidr: string, options?: { nodad?: boolean }): void;
  /** Deletes an address; absent is fine. */
  addrDel(link: string, cidr: string): void;
  /** Adds or replaces a route. */
  routeReplace(route: RouteState): void;
  /** Deletes a route; absent is fine. */
  routeDel(route: RouteState): void;
  /** Sets a permanent neighbour. */
  neighSet(link: string, neigh: { ip: string; mac: string }): void;
  /** Deletes a neighbour; absent is fine. */
  neighDel(link: string, ip: string): void;
  /** The MAC of a neighbour, or undefined. */
  neighMac(link: string, ip: string): string | undefined;
  /** The neighbours of a link (both families); none when it is absent. */
  neighs(link: string): NeighState[];
  /**
   * Reads a sysctl of this namespace (`net.ipv4.ip_forward`), or undefined
   * when the key does not exist (a per-link key of an absent link).
   */
  sysctl(key: string): string | undefined;
  /** Writes a sysctl of this namespace. */
  setSysctl(key: string, value: string): void;
}

/** Opens kernel handles: the current netns, or another by path. */
export interface Kernel {
  /** A handle on the netns the process runs in. */
  host(): KernelNs;
  /**
   * A handle on the netns at `path`.
   *
   * @throws {Deno.errors.NotFound} When the netns path does not exist.
   * @throws {TypeError} When `path` is no network namespace.
   */
  netns(path: string): KernelNs;
  /**
   * Tells whether `path` is the namespace the process runs in (compared by
   * device and inode, so any path to it counts).
   *
   * @throws {Deno.errors.NotFound} When the netns path does not exist.
   * @throws {TypeError} When `path` is no network namespace.
   */
  isHostNetns(path: string): boolean;
}
