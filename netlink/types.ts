/**
 * Specs (inputs) and infos (outputs) of the netlink API. One type is never
 * used for both.
 *
 * @module
 */

/** A veth pair to create. */
export interface VethSpec {
  /** The host-side name (≤ 15 bytes). */
  name: string;
  /** The peer name (≤ 15 bytes), final: it is not renamed later. */
  peerName: string;
  /**
   * A netns path (`/var/run/netns/X`, `/proc/PID/ns/net`): the peer is
   * created directly there.
   */
  peerNetns?: string;
  /** MTU of the host side. */
  mtu?: number;
  /** MTU of the peer (defaults to `mtu`). */
  peerMtu?: number;
  /** MAC of the host side. */
  mac?: string;
  /** MAC of the peer. */
  peerMac?: string;
}

/** A bridge to create. */
export interface BridgeSpec {
  /** The bridge name (≤ 15 bytes). */
  name: string;
  /** MTU. */
  mtu?: number;
  /** MAC. */
  mac?: string;
}

/** Kernel operational state names (`IF_OPER_*`). */
export type OperState =
  | "unknown"
  | "notpresent"
  | "down"
  | "lowerlayerdown"
  | "testing"
  | "dormant"
  | "up";

/** A link as the kernel reports it. */
export interface LinkInfo {
  /** The ifindex. */
  readonly index: number;
  /** The name. */
  readonly name: string;
  /** The MAC (lower case, colons), `""` when the link has none. */
  readonly mac: string;
  /** The MTU. */
  readonly mtu: number;
  /** True when administratively up (`IFF_UP`). */
  readonly up: boolean;
  /** The ifindex of the master (bridge), 0 for none. */
  readonly masterIndex: number;
  /**
   * `IFLA_LINK`: for a veth, its peer's ifindex (in the peer's namespace,
   * which may be another one); 0 for none.
   */
  readonly peerIndex: number;
  /** The link kind: `"veth"`, `"bridge"`, `""` for a plain device. */
  readonly type: string;
  /** The operational state. */
  readonly operState?: OperState;
}

/** An address as the kernel reports it. */
export interface AddrInfo {
  /** The link name. */
  readonly link: string;
  /** The link's ifindex. */
  readonly index: number;
  /** `address/prefix`, canonical. */
  readonly cidr: string;
  /** 4 or 6. */
  readonly family: 4 | 6;
  /** The scope name (`"global"`, `"link"`, `"host"`, ...) or number. */
  readonly scope: Scope;
}

/** A scope name or number (`RT_SCOPE_*`). */
export type Scope = "global" | "site" | "link" | "host" | "nowhere" | number;

/** A routing protocol name or number (`RTPROT_*`). */
export type Protocol =
  | "redirect"
  | "kernel"
  | "boot"
  | "static"
  | "ra"
  | "dhcp"
  | number;

/** A route to add, replace or delete. */
export interface RouteSpec {
  /** `"default"` or a CIDR. */
  dst: string;
  /** The gateway address. */
  gw?: string;
  /** The output link name. */
  link?: string;
  /** The table (default: main, 254). */
  table?: number;
  /** The scope (default: guessed by libnl; link for a gateway-less route). */
  scope?: Scope;
  /** The protocol (default: static). */
  protocol?: Protocol;
  /** Marks the gateway on-link (`RTNH_F_ONLINK`). */
  onlink?: boolean;
  /** The metric (priority). */
  metric?: number;
  /** The preferred source address. */
  src?: string;
}

/**
 * A route as the kernel reports it, one nexthop of it: a multipath route is
 * listed as one entry per nexthop, alike but for `gw`, `link`, `index` and
 * `onlink`.
 */
export interface RouteInfo {
  /** `"default"` or a CIDR. */
  readonly dst: string;
  /** The nexthop's gateway. */
  readonly gw?: string;
  /** The nexthop's output link name. */
  readonly link?: string;
  /** The nexthop's output ifindex. */
  readonly index?: number;
  /** The table. */
  readonly table: number;
  /** The scope. */
  readonly scope: Scope;
  /** The protocol. */
  readonly protocol: Protocol;
  /** The metric, when set. */
  readonly metric?: number;
  /** The preferred source, when set. */
  readonly src?: string;
  /** True when the nexthop is on-link. */
  readonly onlink?: boolean;
  /** 4 or 6. */
  readonly family: 4 | 6;
}

/** A permanent neighbour entry. */
export interface NeighSpec {
  /** The link name. */
  link: string;
  /** The IP address. */
  ip: string;
  /** The MAC. */
  mac: string;
}

/** A neighbour entry as the kernel reports it. */
export interface NeighInfo {
  /** The link name. */
  readonly link: string;
  /** The ifindex. */
  readonly index: number;
  /** The IP address. */
  readonly ip: string;
  /** The MAC, when known. */
  readonly mac?: string;
  /** The `NUD_*` state names, such as `["permanent"]`. */
  readonly state: readonly string[];
  /** 4 or 6. */
  readonly family: 4 | 6;
}
