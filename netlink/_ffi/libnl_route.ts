/**
 * libnl-route-3 symbols: links, addresses, routes and neighbours.
 *
 * @module
 */
import { LazyLibrary } from "./_lazy.ts";
import type { NlSock } from "./libnl.ts";

const SOCK = "pointer" as Deno.NativeTypedPointer<NlSock>;

/** `IFF_UP`. */
export const IFF_UP = 1;
/** `RTNL_BRIDGE_HAIRPIN_MODE` from `netlink/route/link/bridge.h`. */
export const RTNL_BRIDGE_HAIRPIN_MODE = 0x0001;
/** `RTNH_F_ONLINK`. */
export const RTNH_F_ONLINK = 4;
/** `NUD_PERMANENT`. */
export const NUD_PERMANENT = 0x80;

/** The libnl-route-3 symbol table. */
export const LIBNL_ROUTE_SYMBOLS = {
  // --- links ---
  /** `struct rtnl_link *rtnl_link_alloc(void)`. */
  rtnl_link_alloc: { parameters: [], result: "pointer" },
  /** `struct rtnl_link *rtnl_link_veth_alloc(void)`. */
  rtnl_link_veth_alloc: { parameters: [], result: "pointer" },
  /** `void rtnl_link_put(struct rtnl_link *)`. */
  rtnl_link_put: { parameters: ["pointer"], result: "void" },
  /** `struct rtnl_link *rtnl_link_veth_get_peer(struct rtnl_link *)` (+1). */
  rtnl_link_veth_get_peer: { parameters: ["pointer"], result: "pointer" },
  /** `void rtnl_link_set_name(struct rtnl_link *, const char *)`. */
  rtnl_link_set_name: { parameters: ["pointer", "buffer"], result: "void" },
  /** `void rtnl_link_set_flags(struct rtnl_link *, unsigned int)`. */
  rtnl_link_set_flags: { parameters: ["pointer", "u32"], result: "void" },
  /** `void rtnl_link_unset_flags(struct rtnl_link *, unsigned int)`. */
  rtnl_link_unset_flags: { parameters: ["pointer", "u32"], result: "void" },
  /** `void rtnl_link_set_ns_fd(struct rtnl_link *, int fd)`. */
  rtnl_link_set_ns_fd: { parameters: ["pointer", "i32"], result: "void" },
  /** `void rtnl_link_set_mtu(struct rtnl_link *, unsigned int)`. */
  rtnl_link_set_mtu: { parameters: ["pointer", "u32"], result: "void" },
  /** `void rtnl_link_set_addr(struct rtnl_link *, struct nl_addr *)`. */
  rtnl_link_set_addr: { parameters: ["pointer", "pointer"], result: "void" },
  /** `void rtnl_link_set_master(struct rtnl_link *, int ifindex)`. */
  rtnl_link_set_master: { parameters: ["pointer", "i32"], result: "void" },
  /** `void rtnl_link_set_family(struct rtnl_link *, int family)`. */
  rtnl_link_set_family: { parameters: ["pointer", "i32"], result: "void" },
  /** `int rtnl_link_set_type(struct rtnl_link *, const char *)`. */
  rtnl_link_set_type: { parameters: ["pointer", "buffer"], result: "i32" },
  /** `int rtnl_link_bridge_set_flags(struct rtnl_link *, unsigned int)`. */
  rtnl_link_bridge_set_flags: { parameters: ["pointer", "u32"], result: "i32" },
  /** `int rtnl_link_bridge_unset_flags(struct rtnl_link *, unsigned int)`. */
  rtnl_link_bridge_unset_flags: {
    parameters: ["pointer", "u32"],
    result: "i32",
  },
  /**
   * `int rtnl_link_get_kernel(struct nl_sock *, int ifindex, const char *name,
   * struct rtnl_link **result)` (+1 result).
   */
  rtnl_link_get_kernel: {
    parameters: [SOCK, "i32", "buffer", "buffer"],
    result: "i32",
  },
  /** `int rtnl_link_add(struct nl_sock *, struct rtnl_link *, int flags)`. */
  rtnl_link_add: { parameters: [SOCK, "pointer", "i32"], result: "i32" },
  /**
   * `int rtnl_link_change(struct nl_sock *, struct rtnl_link *orig,
   * struct rtnl_link *changes, int flags)`.
   */
  rtnl_link_change: {
    parameters: [SOCK, "pointer", "pointer", "i32"],
    result: "i32",
  },
  /** `int rtnl_link_delete(struct nl_sock *, const struct rtnl_link *)`. */
  rtnl_link_delete: { parameters: [SOCK, "pointer"], result: "i32" },
  /** `int rtnl_link_get_ifindex(struct rtnl_link *)`. */
  rtnl_link_get_ifindex: { parameters: ["pointer"], result: "i32" },
  /** `char *rtnl_link_get_name(struct rtnl_link *)` (borrowed). */
  rtnl_link_get_name: { parameters: ["pointer"], result: "pointer" },
  /** `char *rtnl_link_get_type(struct rtnl_link *)` (borrowed). */
  rtnl_link_get_type: { parameters: ["pointer"], result: "pointer" },
  /** `unsigned int rtnl_link_get_flags(struct rtnl_link *)`. */
  rtnl_link_get_flags: { parameters: ["pointer"], result: "u32" },
  /** `unsigned int rtnl_link_get_mtu(struct rtnl_link *)`. */
  rtnl_link_get_mtu: { parameters: ["pointer"], result: "u32" },
  /** `int rtnl_link_get_master(struct rtnl_link *)`. */
  rtnl_link_get_master: { parameters: ["pointer"], result: "i32" },
  /** `int rtnl_link_get_link(struct rtnl_link *)` (`IFLA_LINK`). */
  rtnl_link_get_link: { parameters: ["pointer"], result: "i32" },
  /** `struct nl_addr *rtnl_link_get_addr(struct rtnl_link *)` (borrowed). */
  rtnl_link_get_addr: { parameters: ["pointer"], result: "pointer" },
  /** `uint8_t rtnl_link_get_operstate(struct rtnl_link *)`. */
  rtnl_link_get_operstate: { parameters: ["pointer"], result: "u8" },

  // --- addresses ---
  /** `struct rtnl_addr *rtnl_addr_alloc(void)`. */
  rtnl_addr_alloc: { parameters: [], result: "pointer" },
  /** `void rtnl_addr_put(struct rtnl_addr *)`. */
  rtnl_addr_put: { parameters: ["pointer"], result: "void" },
  /** `void rtnl_addr_set_ifindex(struct rtnl_addr *, int)`. */
  rtnl_addr_set_ifindex: { parameters: ["pointer", "i32"], result: "void" },
  /** `int rtnl_addr_set_local(struct rtnl_addr *, struct nl_addr *)`. */
  rtnl_addr_set_local: { parameters: ["pointer", "pointer"], result: "i32" },
  /** `void rtnl_addr_set_flags(struct rtnl_addr *, unsigned int)`. */
  rtnl_addr_set_flags: { parameters: ["pointer", "u32"], result: "void" },
  /** `int rtnl_addr_add(struct nl_sock *, struct rtnl_addr *, int flags)`. */
  rtnl_addr_add: { parameters: [SOCK, "pointer", "i32"], result: "i32" },
  /** `int rtnl_addr_delete(struct nl_sock *, struct rtnl_addr *, int)`. */
  rtnl_addr_delete: { parameters: [SOCK, "pointer", "i32"], result: "i32" },
  /** `struct nl_addr *rtnl_addr_get_local(struct rtnl_addr *)` (borrowed). */
  rtnl_addr_get_local: { parameters: ["pointer"], result: "pointer" },
  /** `int rtnl_addr_get_ifindex(struct rtnl_addr *)`. */
  rtnl_addr_get_ifindex: { parameters: ["pointer"], result: "i32" },
  /** `int rtnl_addr_get_family(struct rtnl_addr *)`. */
  rtnl_addr_get_family: { parameters: ["pointer"], result: "i32" },
  /** `int rtnl_addr_get_prefixlen(struct rtnl_addr *)`. */
  rtnl_addr_get_prefixlen: { parameters: ["pointer"], result: "i32" },
  /** `int rtnl_addr_get_scope(struct rtnl_addr *)`. */
  rtnl_addr_get_scope: { parameters: ["pointer"], result: "i32" },

  // --- routes ---
  /** `struct rtnl_route *rtnl_route_alloc(void)`. */
  rtnl_route_alloc: { parameters: [], result: "pointer" },
  /** `void rtnl_route_put(struct rtnl_route *)` (frees its nexthops). */
  rtnl_route_put: { parameters: ["pointer"], result: "void" },
  /** `int rtnl_route_set_dst(struct rtnl_route *, struct nl_addr *)`. */
  rtnl_route_set_dst: { parameters: ["pointer", "pointer"], result: "i32" },
  /** `int rtnl_route_set_pref_src(struct rtnl_route *, struct nl_addr *)`. */
  rtnl_route_set_pref_src: {
    parameters: ["pointer", "pointer"],
    result: "i32",
  },
  /** `void rtnl_route_set_table(struct rtnl_route *, uint32_t)`. */
  rtnl_route_set_table: { parameters: ["pointer", "u32"], result: "void" },
  /** `void rtnl_route_set_scope(struct rtnl_route *, uint8_t)`. */
  rtnl_route_set_scope: { parameters: ["pointer", "u8"], result: "void" },
  /** `void rtnl_route_set_protocol(struct rtnl_route *, uint8_t)`. */
  rtnl_route_set_protocol: { parameters: ["pointer", "u8"], result: "void" },
  /** `void rtnl_route_set_priority(struct rtnl_route *, uint32_t)`. */
  rtnl_route_set_priority: { parameters: ["pointer", "u32"], result: "void" },
  /** `int rtnl_route_set_family(struct rtnl_route *, uint8_t)`. */
  rtnl_route_set_family: { parameters: ["pointer", "u8"], result: "i32" },
  /** `struct rtnl_nexthop *rtnl_route_nh_alloc(void)`. */
  rtnl_route_nh_alloc: { parameters: [], result: "pointer" },
  /** `void rtnl_route_nh_free(struct rtnl_nexthop *)`. */
  rtnl_route_nh_free: { parameters: ["pointer"], result: "void" },
  /** `void rtnl_route_nh_set_ifindex(struct rtnl_nexthop *, int)`. */
  rtnl_route_nh_set_ifindex: { parameters: ["pointer", "i32"], result: "void" },
  /** `void rtnl_route_nh_set_gateway(struct rtnl_nexthop *, struct nl_addr *)`. */
  rtnl_route_nh_set_gateway: {
    parameters: ["pointer", "pointer"],
    result: "void",
  },
  /** `void rtnl_route_nh_set_flags(struct rtnl_nexthop *, unsigned int)`. */
  rtnl_route_nh_set_flags: { parameters: ["pointer", "u32"], result: "void" },
  /** `void rtnl_route_add_nexthop(struct rtnl_route *, struct rtnl_nexthop *)`. */
  rtnl_route_add_nexthop: {
    parameters: ["pointer", "pointer"],
    result: "void",
  },
  /** `int rtnl_route_add(struct nl_sock *, struct rtnl_route *, int flags)`. */
  rtnl_route_add: { parameters: [SOCK, "pointer", "i32"], result: "i32" },
  /** `int rtnl_route_delete(struct nl_sock *, struct rtnl_route *, int)`. */
  rtnl_route_delete: { parameters: [SOCK, "pointer", "i32"], result: "i32" },
  /** `struct nl_addr *rtnl_route_get_dst(struct rtnl_route *)` (borrowed). */
  rtnl_route_get_dst: { parameters: ["pointer"], result: "pointer" },
  /** `struct nl_addr *rtnl_route_get_pref_src(struct rtnl_route *)`. */
  rtnl_route_get_pref_src: { parameters: ["pointer"], result: "pointer" },
  /** `uint32_t rtnl_route_get_table(struct rtnl_route *)`. */
  rtnl_route_get_table: { parameters: ["pointer"], result: "u32" },
  /** `int rtnl_route_get_scope(struct rtnl_route *)`. */
  rtnl_route_get_scope: { parameters: ["pointer"], result: "i32" },
  /** `uint8_t rtnl_route_get_protocol(struct rtnl_route *)`. */
  rtnl_route_get_protocol: { parameters: ["pointer"], result: "u8" },
  /** `uint32_t rtnl_route_get_priority(struct rtnl_route *)`. */
  rtnl_route_get_priority: { parameters: ["pointer"], result: "u32" },
  /** `int rtnl_route_get_family(struct rtnl_route *)`. */
  rtnl_route_get_family: { parameters: ["pointer"], result: "i32" },
  /** `uint8_t rtnl_route_get_type(struct rtnl_route *)`. */
  rtnl_route_get_type: { parameters: ["pointer"], result: "u8" },
  /** `int rtnl_route_get_nnexthops(struct rtnl_route *)`. */
  rtnl_route_get_nnexthops: { parameters: ["pointer"], result: "i32" },
  /** `struct rtnl_nexthop *rtnl_route_nexthop_n(struct rtnl_route *, int)`. */
  rtnl_route_nexthop_n: { parameters: ["pointer", "i32"], result: "pointer" },
  /** `struct nl_addr *rtnl_route_nh_get_gateway(struct rtnl_nexthop *)`. */
  rtnl_route_nh_get_gateway: { parameters: ["pointer"], result: "pointer" },
  /** `int rtnl_route_nh_get_ifindex(struct rtnl_nexthop *)`. */
  rtnl_route_nh_get_ifindex: { parameters: ["pointer"], result: "i32" },
  /** `unsigned int rtnl_route_nh_get_flags(struct rtnl_nexthop *)`. */
  rtnl_route_nh_get_flags: { parameters: ["pointer"], result: "u32" },

  // --- neighbours ---
  /** `struct rtnl_neigh *rtnl_neigh_alloc(void)`. */
  rtnl_neigh_alloc: { parameters: [], result: "pointer" },
  /** `void rtnl_neigh_put(struct rtnl_neigh *)`. */
  rtnl_neigh_put: { parameters: ["pointer"], result: "void" },
  /** `void rtnl_neigh_set_ifindex(struct rtnl_neigh *, int)`. */
  rtnl_neigh_set_ifindex: { parameters: ["pointer", "i32"], result: "void" },
  /** `int rtnl_neigh_set_dst(struct rtnl_neigh *, struct nl_addr *)`. */
  rtnl_neigh_set_dst: { parameters: ["pointer", "pointer"], result: "i32" },
  /** `void rtnl_neigh_set_lladdr(struct rtnl_neigh *, struct nl_addr *)`. */
  rtnl_neigh_set_lladdr: { parameters: ["pointer", "pointer"], result: "void" },
  /** `void rtnl_neigh_set_state(struct rtnl_neigh *, int)`. */
  rtnl_neigh_set_state: { parameters: ["pointer", "i32"], result: "void" },
  /** `int rtnl_neigh_add(struct nl_sock *, struct rtnl_neigh *, int flags)`. */
  rtnl_neigh_add: { parameters: [SOCK, "pointer", "i32"], result: "i32" },
  /** `int rtnl_neigh_delete(struct nl_sock *, struct rtnl_neigh *, int)`. */
  rtnl_neigh_delete: { parameters: [SOCK, "pointer", "i32"], result: "i32" },
  /** `struct nl_addr *rtnl_neigh_get_dst(struct rtnl_neigh *)` (borrowed). */
  rtnl_neigh_get_dst: { parameters: ["pointer"], result: "pointer" },
  /** `struct nl_addr *rtnl_neigh_get_lladdr(struct rtnl_neigh *)`. */
  rtnl_neigh_get_lladdr: { parameters: ["pointer"], result: "pointer" },
  /** `int rtnl_neigh_get_ifindex(struct rtnl_neigh *)`. */
  rtnl_neigh_get_ifindex: { parameters: ["pointer"], result: "i32" },
  /** `int rtnl_neigh_get_state(struct rtnl_neigh *)`. */
  rtnl_neigh_get_state: { parameters: ["pointer"], result: "i32" },
  /** `int rtnl_neigh_get_family(struct rtnl_neigh *)`. */
  rtnl_neigh_get_family: { parameters: ["pointer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libnl-route-3, bound lazily; `VNET_LIBNL_ROUTE_PATH` overrides the path. */
export const libnlRoute: LazyLibrary<typeof LIBNL_ROUTE_SYMBOLS> =
  new LazyLibrary("libnl-route-3.so.200", LIBNL_ROUTE_SYMBOLS, {
    envVar: "VNET_LIBNL_ROUTE_PATH",
  });
