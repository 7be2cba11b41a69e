/**
 * Route verbs over an `nl_sock`: add, replace, delete and list.
 *
 * @module
 */
import { ipFamily, normalizeIp, parseCidr } from "@vnet/address";
import {
  ADDR_SYMBOLS,
  addressFamily,
  AF_INET,
  AF_INET6,
  ipVersion,
  libnl,
  nlAddrText,
  nlCheck,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  type NlSock,
  nonNull,
  type OpName,
  parseNlAddr,
} from "./_ffi/libnl.ts";
import { DUMP_SYMBOLS, dumpObjects, RTM_GETROUTE } from "./_ffi/dump.ts";
import type { Symbols } from "./_ffi/_lazy.ts";
import {
  type LIBNL_ROUTE_SYMBOLS,
  libnlRoute,
  RTNH_F_ONLINK,
} from "./_ffi/libnl_route.ts";
import { scopeName } from "./addr.ts";
import {
  linkIndex,
  LIST_LINK_SYMBOLS,
  listFilter,
  LOOKUP_SYMBOLS,
} from "./link.ts";
import type { Protocol, RouteInfo, RouteSpec, Scope } from "./types.ts";

const SCOPES: Record<string, number> = {
  global: 0,
  site: 200,
  link: 253,
  host: 254,
  nowhere: 255,
};

const PROTOCOLS: Record<string, number> = {
  redirect: 1,
  kernel: 2,
  boot: 3,
  static: 4,
  ra: 9,
  dhcp: 16,
};

/** `RT_TABLE_MAIN`. */
export const RT_TABLE_MAIN = 254;

function byte(value: Scope | Protocol, table: Record<string, number>): number {
  const n = typeof value === "number" ? value : table[value];
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 255) {
    throw new RangeError(`Cannot use "${value}": unknown or out of range`);
  }
  return n;
}

/** Protocol numbers to names, for the list (one lookup per route). */
const PROTOCOL_NAMES: ReadonlyMap<number, Protocol> = new Map(
  Object.entries(PROTOCOLS).map(([name, n]) => [n, name as Protocol]),
);

function protocolName(n: number): Protocol {
  return PROTOCOL_NAMES.get(n) ?? n;
}

function describe(spec: RouteSpec): string {
  let text = spec.dst;
  if (spec.gw !== undefined) text += ` via ${spec.gw}`;
  if (spec.link !== undefined) text += ` dev ${spec.link}`;
  if (spec.table !== undefined) text += ` table ${spec.table}`;
  return text;
}

/** Validates a spec and returns the address family (`AF_*`). */
function routeFamily(spec: RouteSpec): number {
  let family: 4 | 6 | undefined;
  if (spec.dst !== "default") family = parseCidr(spec.dst).family;
  for (const addr of [spec.gw, spec.src]) {
    if (addr === undefined) continue;
    const f = ipFamily(addr);
    if (f === undefined) {
      throw new SyntaxError(`Cannot parse IP address "${addr}"`);
    }
    if (family !== undefined && f !== family) {
      throw new TypeError(
        `Cannot use route "${describe(spec)}": mixed address families`,
      );
    }
    family = f;
  }
  return family === 6 ? AF_INET6 : AF_INET;
}

const BUILD_SYMBOLS = [
  "rtnl_route_alloc",
  "rtnl_route_put",
  "rtnl_route_set_family",
  "rtnl_route_set_dst",
  "rtnl_route_set_table",
  "rtnl_route_nh_alloc",
  "rtnl_route_nh_set_ifindex",
  "rtnl_route_nh_set_gateway",
  "rtnl_route_add_nexthop",
] as const;

/** Setters bound only when a route uses them (0.2 ms per bound symbol). */
type OptionalSetter =
  | "rtnl_route_set_scope"
  | "rtnl_route_set_protocol"
  | "rtnl_route_set_priority"
  | "rtnl_route_set_pref_src"
  | "rtnl_route_nh_set_flags";

function buildRoute(
  stack: DisposableStack,
  sock: NlSock,
  options: { spec: RouteSpec; what: OpName; forDelete: boolean },
): Deno.PointerObject {
  const { spec, what } = options;
  const af = routeFamily(spec);
  if (
    spec.table !== undefined && (!Number.isInteger(spec.table) ||
      spec.table < 0 || spec.table > 0xffffffff)
  ) {
    throw new RangeError(`Cannot use table ${spec.table}: out of range`);
  }
  if (
    spec.metric !== undefined && (!Number.isInteger(spec.metric) ||
      spec.metric < 0 || spec.metric > 0xffffffff)
  ) {
    throw new RangeError(`Cannot use metric ${spec.metric}: out of range`);
  }
  const scope = spec.scope === undefined ? undefined : byte(spec.scope, SCOPES);
  const protocol = spec.protocol === undefined
    ? undefined
    : byte(spec.protocol, PROTOCOLS);
  const index = spec.link === undefined
    ? undefined
    : linkIndex(sock, spec.link);
  const optional: OptionalSetter[] = [];
  if (scope !== undefined || options.forDelete) {
    optional.push("rtnl_route_set_scope");
  }
  if (protocol !== undefined || options.forDelete) {
    optional.push("rtnl_route_set_protocol");
  }
  if (spec.metric !== undefined) optional.push("rtnl_route_set_priority");
  if (spec.src !== undefined) optional.push("rtnl_route_set_pref_src");
  if (spec.onlink === true) optional.push("rtnl_route_nh_set_flags");
  const r = libnlRoute.need(...BUILD_SYMBOLS, ...optional);
  const route = stack.adopt(nonNull(r.rtnl_route_alloc()), r.rtnl_route_put);
  nlCheck(r.rtnl_route_set_family(route, af), what);
  const dstText = spec.dst === "default" ? "default" : (() => {
    const c = parseCidr(spec.dst);
    return `${c.ip}/${c.prefix}`;
  })();
  const dst = parseNlAddr(stack, dstText, { family: af, what });
  nlCheck(r.rtnl_route_set_dst(route, dst), what);
  r.rtnl_route_set_table(route, spec.table ?? RT_TABLE_MAIN);
  // A delete must match any scope and protocol unless the caller names one.
  if (scope !== undefined || options.forDelete) {
    libnlRoute.need("rtnl_route_set_scope").rtnl_route_set_scope(
      route,
      scope ?? SCOPES.nowhere ?? 255,
    );
  }
  if (protocol !== undefined || options.forDelete) {
    libnlRoute.need("rtnl_route_set_protocol").rtnl_route_set_protocol(
      route,
      protocol ?? 0,
    );
  }
  if (spec.metric !== undefined) {
    libnlRoute.need("rtnl_route_set_priority").rtnl_route_set_priority(
      route,
      spec.metric,
    );
  }
  if (spec.src !== undefined) {
    const src = parseNlAddr(stack, normalizeIp(spec.src), { family: af, what });
    nlCheck(
      libnlRoute.need("rtnl_route_set_pref_src").rtnl_route_set_pref_src(
        route,
        src,
      ),
      what,
    );
  }
  if (index !== undefined || spec.gw !== undefined) {
    const nh = r.rtnl_route_nh_alloc();
    if (nh === null) throw new RangeError("Cannot allocate nexthop");
    r.rtnl_route_add_nexthop(route, nh); // the route owns it from here
    if (index !== undefined) r.rtnl_route_nh_set_ifindex(nh, index);
    if (spec.gw !== undefined) {
      const gw = parseNlAddr(stack, normalizeIp(spec.gw), { family: af, what });
      r.rtnl_route_nh_set_gateway(nh, gw);
    }
    if (spec.onlink === true) {
      libnlRoute.need("rtnl_route_nh_set_flags").rtnl_route_nh_set_flags(
        nh,
        RTNH_F_ONLINK,
      );
    }
  }
  return route;
}

/** `ip route add|replace SPEC`. */
export function routeAdd(
  sock: NlSock,
  spec: RouteSpec,
  options: { replace: boolean },
): void {
  const what = {
    op: options.replace ? "replace route" : "add route",
    object: describe(spec),
  };
  const r = libnlRoute.need(
    ...LOOKUP_SYMBOLS,
    ...BUILD_SYMBOLS,
    "rtnl_route_add",
  );
  libnl.need(...ADDR_SYMBOLS);
  using stack = new DisposableStack();
  const route = buildRoute(stack, sock, { spec, what, forDelete: false });
  const flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  nlCheck(r.rtnl_route_add(sock, route, flags), what);
}

/** `ip route del SPEC`. */
export function routeDel(sock: NlSock, spec: RouteSpec): void {
  const what = { op: "delete route", object: describe(spec) };
  const r = libnlRoute.need(
    ...LOOKUP_SYMBOLS,
    ...BUILD_SYMBOLS,
    "rtnl_route_delete",
  );
  libnl.need(...ADDR_SYMBOLS);
  using stack = new DisposableStack();
  const route = buildRoute(stack, sock, { spec, what, forDelete: true });
  nlCheck(r.rtnl_route_delete(sock, route, 0), what);
}

/** Symbols of a nexthop read-out. */
const HOP_SYMBOLS = [
  "rtnl_route_get_nnexthops",
  "rtnl_route_nexthop_n",
  "rtnl_route_nh_get_gateway",
  "rtnl_route_nh_get_ifindex",
  "rtnl_route_nh_get_flags",
] as const;

/** Symbols of a route list. */
const LIST_SYMBOLS = [
  "rtnl_route_get_dst",
  "rtnl_route_get_pref_src",
  "rtnl_route_get_table",
  "rtnl_route_get_scope",
  "rtnl_route_get_protocol",
  "rtnl_route_get_priority",
  "rtnl_route_get_family",
  ...HOP_SYMBOLS,
] as const;

/** A nexthop's part of a {@link RouteInfo}. */
interface Hop {
  gw: string | undefined;
  index: number | undefined;
  onlink: boolean;
}

/**
 * The nexthops of a borrowed `rtnl_route`, only those on link `only` when
 * given; none for a route without any.
 */
function readHops(
  r: Pick<Symbols<typeof LIBNL_ROUTE_SYMBOLS>, typeof HOP_SYMBOLS[number]>,
  route: Deno.PointerObject,
  only: number | undefined,
): Hop[] {
  const hops: Hop[] = [];
  const count = r.rtnl_route_get_nnexthops(route);
  for (let i = 0; i < count; i++) {
    const nh = r.rtnl_route_nexthop_n(route, i);
    if (nh === null) continue;
    const ifindex = r.rtnl_route_nh_get_ifindex(nh);
    const index = ifindex > 0 ? ifindex : undefined;
    if (only !== undefined && index !== only) continue;
    hops.push({
      gw: nlAddrText(r.rtnl_route_nh_get_gateway(nh)),
      index,
      onlink: (r.rtnl_route_nh_get_flags(nh) & RTNH_F_ONLINK) !== 0,
    });
  }
  return hops;
}

/**
 * `ip route show [table T] [dev LINK]`: the main table by default, every
 * table with `table: 0`. A route with several nexthops gives one entry per
 * nexthop (each with its own gateway, link and on-link flag); filtered to a
 * link, only the entries whose nexthop is on it.
 */
export function routeList(
  sock: NlSock,
  options: { family?: 4 | 6; table?: number; link?: string } = {},
): RouteInfo[] {
  const { only, names } = listFilter(sock, options.link);
  const table = options.table ?? RT_TABLE_MAIN;
  const n = libnl.need(...DUMP_SYMBOLS, "nl_addr_get_prefixlen");
  const r = libnlRoute.need(
    ...LIST_SYMBOLS,
    ...LOOKUP_SYMBOLS,
    ...LIST_LINK_SYMBOLS,
  );
  return dumpObjects<RouteInfo>(sock, {
    type: RTM_GETROUTE,
    family: addressFamily(options.family),
    what: { op: "list", object: "routes" },
    ...(only === undefined ? {} : { link: only }),
    read: (route, out) => {
      const family = ipVersion(r.rtnl_route_get_family(route));
      if (family === undefined) return;
      const t = r.rtnl_route_get_table(route);
      if (table !== 0 && t !== table) return;
      const hops = readHops(r, route, only);
      if (hops.length === 0) {
        if (only !== undefined) return;
        hops.push({ gw: undefined, index: undefined, onlink: false });
      }
      const dstPtr = r.rtnl_route_get_dst(route);
      const dstIp = nlAddrText(dstPtr);
      const prefix = dstPtr === null ? 0 : n.nl_addr_get_prefixlen(dstPtr);
      const dst =
        dstIp === undefined || (prefix === 0 && /^(0\.0\.0\.0|::)$/.test(dstIp))
          ? "default"
          : `${dstIp}/${prefix}`;
      const metric = r.rtnl_route_get_priority(route);
      const src = nlAddrText(r.rtnl_route_get_pref_src(route));
      const scope = scopeName(r.rtnl_route_get_scope(route));
      const protocol = protocolName(r.rtnl_route_get_protocol(route));
      for (const { gw, index, onlink } of hops) {
        const link = index === undefined ? undefined : names.get(index);
        out.push({
          dst,
          ...(gw === undefined ? {} : { gw }),
          ...(link === undefined ? {} : { link }),
          ...(index === undefined ? {} : { index }),
          table: t,
          scope,
          protocol,
          ...(metric === 0 ? {} : { metric }),
          ...(src === undefined ? {} : { src }),
          ...(onlink ? { onlink } : {}),
          family,
        });
      }
    },
  });
}
