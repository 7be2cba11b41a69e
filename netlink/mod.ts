/**
 * @vnet/netlink: Linux networking over libnl through `Deno.dlopen`, the only
 * FFI in the project.
 *
 * A {@link NetlinkHandle} is a route socket bound to one network namespace,
 * with iproute2-like verbs (`linkAddVeth`, `addrAdd`, `routeAdd`,
 * `neighSet`, ...). {@link withNetns}, {@link netnsAdd} and
 * {@link netnsDel} manage namespaces; {@link sysctlGet}/{@link sysctlSet}
 * reach per-namespace sysctls. {@link NftSocket} reads nf_tables' ruleset
 * generation, which tells whether a table listing is still current, and
 * deletes rules by handle at a given generation.
 * {@link processInfo} reads a process's name, state and start time;
 * {@link readLink} a link's target, `/proc`'s too.
 * Address and MAC text is parsed and checked
 * by `@vnet/address` (`netlink/address/`, pure, its own member).
 *
 * libnl is loaded lazily on first use (`libnl-3.so.200`,
 * `libnl-route-3.so.200`; override with `VNET_LIBNL_PATH` and
 * `VNET_LIBNL_ROUTE_PATH`), and only the symbols a verb needs are bound.
 *
 * @example Usage
 * ```ts ignore
 * import { NetlinkHandle } from "@vnet/netlink";
 *
 * using nl = NetlinkHandle.open();
 * nl.linkAddVeth({ name: "azv1", peerName: "eth0", peerNetns: "/var/run/netns/c1" });
 * nl.linkSetUp("azv1");
 * ```
 *
 * @module
 */
export { NetlinkHandle } from "./handle.ts";
export { mapNetlinkError, NetlinkError, NLE } from "./errors.ts";
export type { NetlinkErrorOptions } from "./errors.ts";
export {
  isCurrentNetns,
  NETNS_RUN_DIR,
  netnsAdd,
  netnsDel,
  withNetns,
} from "./netns.ts";
export {
  NFT_MAX_DELETE,
  NftGenerationMoved,
  type NftRuleInfo,
  type NftRuleRef,
  NftSocket,
  type NftTableRef,
} from "./nftables.ts";
export { type ProcessInfo, processInfo } from "./process.ts";
export { readLink } from "./read_link.ts";
export { sysctlGet, sysctlSet } from "./sysctl.ts";
export { validateIfName, validateMtu } from "./link.ts";
export type {
  AddrInfo,
  BridgeSpec,
  LinkInfo,
  NeighInfo,
  NeighSpec,
  OperState,
  Protocol,
  RouteInfo,
  RouteSpec,
  Scope,
  VethSpec,
} from "./types.ts";
