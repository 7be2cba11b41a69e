/**
 * Neighbour (ARP/NDP) verbs over an `nl_sock`: set, add, delete and list.
 *
 * @module
 */
import { kernelMac, parseCidr } from "@vnet/address";
import {
  ADDR_SYMBOLS,
  AF_INET,
  AF_INET6,
  AF_LLC,
  AF_UNSPEC,
  ipVersion,
  libnl,
  nlAddrText,
  nlCheck,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  type NlSock,
  nonNull,
  parseNlAddr,
} from "./_ffi/libnl.ts";
import { DUMP_SYMBOLS, dumpObjects, RTM_GETNEIGH } from "./_ffi/dump.ts";
import { libnlRoute, NUD_PERMANENT } from "./_ffi/libnl_route.ts";
import {
  linkIndex,
  LIST_LINK_SYMBOLS,
  listFilter,
  LOOKUP_SYMBOLS,
} from "./link.ts";
import type { NeighInfo, NeighSpec } from "./types.ts";

const NUD_NAMES: readonly [number, string][] = [
  [0x01, "incomplete"],
  [0x02, "reachable"],
  [0x04, "stale"],
  [0x08, "delay"],
  [0x10, "probe"],
  [0x20, "failed"],
  [0x40, "noarp"],
  [0x80, "permanent"],
];

const BUILD_SYMBOLS = [
  "rtnl_neigh_alloc",
  "rtnl_neigh_put",
  "rtnl_neigh_set_ifindex",
  "rtnl_neigh_set_dst",
] as const;

/** Symbols of a neighbour with a MAC (bound only then: 0.2 ms each). */
const LLADDR_SYMBOLS = [
  "rtnl_neigh_set_lladdr",
  "rtnl_neigh_set_state",
] as const;

function buildNeigh(
  stack: DisposableStack,
  sock: NlSock,
  options: { link: string; ip: string; mac?: string; op: string },
): Deno.PointerObject {
  const c = parseCidr(options.ip);
  const mac = options.mac === undefined ? undefined : kernelMac(options.mac);
  const what = { op: options.op, object: `${c.ip} dev ${options.link}` };
  const r = libnlRoute.need(...BUILD_SYMBOLS);
  const index = linkIndex(sock, options.link);
  const n = stack.adopt(nonNull(r.rtnl_neigh_alloc()), r.rtnl_neigh_put);
  r.rtnl_neigh_set_ifindex(n, index);
  const dst = parseNlAddr(stack, c.ip, {
    family: c.family === 4 ? AF_INET : AF_INET6,
    what,
  });
  nlCheck(r.rtnl_neigh_set_dst(n, dst), what);
  if (mac !== undefined) {
    const ll = parseNlAddr(stack, mac, { family: AF_LLC, what });
    const m = libnlRoute.need(...LLADDR_SYMBOLS);
    m.rtnl_neigh_set_lladdr(n, ll);
    m.rtnl_neigh_set_state(n, NUD_PERMANENT);
  }
  return n;
}

/** `ip neigh replace|add IP lladdr MAC dev LINK nud permanent`. */
export function neighAdd(
  sock: NlSock,
  spec: NeighSpec,
  options: { replace: boolean },
): void {
  const op = options.replace ? "set neighbour" : "add neighbour";
  const r = libnlRoute.need(
    ...LOOKUP_SYMBOLS,
    ...BUILD_SYMBOLS,
    ...(spec.mac === undefined ? [] : LLADDR_SYMBOLS),
    "rtnl_neigh_add",
  );
  libnl.need(...ADDR_SYMBOLS);
  using stack = new DisposableStack();
  const n = buildNeigh(stack, sock, { ...spec, op });
  const flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  nlCheck(r.rtnl_neigh_add(sock, n, flags), {
    op,
    object: `${spec.ip} dev ${spec.link}`,
  });
}

/** `ip neigh del IP dev LINK`. */
export function neighDel(
  sock: NlSock,
  spec: { link: string; ip: string },
): void {
  const op = "delete neighbour";
  const r = libnlRoute.need(
    ...LOOKUP_SYMBOLS,
    ...BUILD_SYMBOLS,
    "rtnl_neigh_delete",
  );
  libnl.need(...ADDR_SYMBOLS);
  using stack = new DisposableStack();
  const n = buildNeigh(stack, sock, { ...spec, op });
  nlCheck(r.rtnl_neigh_delete(sock, n, 0), {
    op,
    object: `${spec.ip} dev ${spec.link}`,
  });
}

const LIST_SYMBOLS = [
  "rtnl_neigh_get_dst",
  "rtnl_neigh_get_lladdr",
  "rtnl_neigh_get_ifindex",
  "rtnl_neigh_get_state",
  "rtnl_neigh_get_family",
] as const;

/** `ip neigh show [dev LINK]` (IPv4 and IPv6 entries). */
export function neighList(
  sock: NlSock,
  options: { link?: string } = {},
): NeighInfo[] {
  const { only, names } = listFilter(sock, options.link);
  libnl.need(...DUMP_SYMBOLS);
  const r = libnlRoute.need(
    ...LIST_SYMBOLS,
    ...LOOKUP_SYMBOLS,
    ...LIST_LINK_SYMBOLS,
  );
  return dumpObjects<NeighInfo>(sock, {
    type: RTM_GETNEIGH,
    family: AF_UNSPEC,
    what: { op: "list", object: "neighbours" },
    ...(only === undefined ? {} : { link: only }),
    read: (n, out) => {
      const family = ipVersion(r.rtnl_neigh_get_family(n));
      if (family === undefined) return;
      const index = r.rtnl_neigh_get_ifindex(n);
      if (only !== undefined && index !== only) return;
      const ip = nlAddrText(r.rtnl_neigh_get_dst(n));
      if (ip === undefined) return;
      const mac = nlAddrText(r.rtnl_neigh_get_lladdr(n));
      const state = r.rtnl_neigh_get_state(n);
      out.push({
        link: names.get(index) ?? "",
        index,
        ip,
        ...(mac === undefined ? {} : { mac }),
        state: NUD_NAMES.filter(([bit]) => (state & bit) !== 0).map(([, s]) =>
          s
        ),
        family,
      });
    },
  });
}
