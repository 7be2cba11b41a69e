/**
 * Address verbs over an `nl_sock`: add, delete and list.
 *
 * @module
 */
import { parseCidr } from "@vnet/address";
import {
  ADDR_SYMBOLS,
  addressFamily,
  AF_INET,
  AF_INET6,
  ipVersion,
  libnl,
  nlAddrText,
  nlCheck,
  NLE_CODES,
  nlError,
  NLM_F_EXCL,
  type NlSock,
  nonNull,
  parseNlAddr,
} from "./_ffi/libnl.ts";
import { DUMP_SYMBOLS, dumpObjects, RTM_GETADDR } from "./_ffi/dump.ts";
import { libnlRoute } from "./_ffi/libnl_route.ts";
import {
  linkIndex,
  LIST_LINK_SYMBOLS,
  listFilter,
  LOOKUP_SYMBOLS,
} from "./link.ts";
import type { AddrInfo, Scope } from "./types.ts";

/** Scope numbers to names (`RT_SCOPE_*`). */
export function scopeName(n: number): Scope {
  switch (n) {
    case 0:
      return "global";
    case 200:
      return "site";
    case 253:
      return "link";
    case 254:
      return "host";
    case 255:
      return "nowhere";
    default:
      return n;
  }
}

const BUILD_SYMBOLS = [
  "rtnl_addr_alloc",
  "rtnl_addr_put",
  "rtnl_addr_set_ifindex",
  "rtnl_addr_set_local",
] as const;

function buildAddr(
  stack: DisposableStack,
  sock: NlSock,
  options: { link: string; cidr: string; op: string },
): Deno.PointerObject {
  const c = parseCidr(options.cidr);
  const r = libnlRoute.need(...BUILD_SYMBOLS);
  const what = {
    op: options.op,
    object: `${options.cidr} dev ${options.link}`,
  };
  const index = linkIndex(sock, options.link);
  const a = stack.adopt(nonNull(r.rtnl_addr_alloc()), r.rtnl_addr_put);
  r.rtnl_addr_set_ifindex(a, index);
  const local = parseNlAddr(stack, `${c.ip}/${c.prefix}`, {
    family: c.family === 4 ? AF_INET : AF_INET6,
    what,
  });
  nlCheck(r.rtnl_addr_set_local(a, local), what);
  return a;
}

/** `IFA_F_NODAD`: the kernel runs no duplicate address detection. */
const IFA_F_NODAD = 0x02;

/** `ip addr add CIDR dev LINK [nodad]`. */
export function addrAdd(
  sock: NlSock,
  options: { link: string; cidr: string; nodad?: boolean },
): void {
  const r = libnlRoute.need(
    ...LOOKUP_SYMBOLS,
    ...BUILD_SYMBOLS,
    "rtnl_addr_add",
    ...(options.nodad === true ? ["rtnl_addr_set_flags"] as const : []),
  );
  libnl.need(...ADDR_SYMBOLS);
  using stack = new DisposableStack();
  const op = "add address";
  const a = buildAddr(stack, sock, { ...options, op });
  if (options.nodad === true) r.rtnl_addr_set_flags(a, IFA_F_NODAD);
  nlCheck(r.rtnl_addr_add(sock, a, NLM_F_EXCL), {
    op,
    object: `${options.cidr} dev ${options.link}`,
  });
}

/** `ip addr del CIDR dev LINK`; a missing address is `NotFound`. */
export function addrDel(
  sock: NlSock,
  options: { link: string; cidr: string },
): void {
  const r = libnlRoute.need(
    ...LOOKUP_SYMBOLS,
    ...BUILD_SYMBOLS,
    "rtnl_addr_delete",
  );
  libnl.need(...ADDR_SYMBOLS);
  using stack = new DisposableStack();
  const op = "delete address";
  const what = { op, object: `${options.cidr} dev ${options.link}` };
  const a = buildAddr(stack, sock, { ...options, op });
  const rc = r.rtnl_addr_delete(sock, a, 0);
  if (rc === -NLE_CODES.NOADDR) {
    // EADDRNOTAVAIL: the address is not there, which callers treat as absent.
    const cause = nlError(rc, what);
    throw new Deno.errors.NotFound(cause.message, { cause });
  }
  nlCheck(rc, what);
}

const LIST_SYMBOLS = [
  "rtnl_addr_get_local",
  "rtnl_addr_get_ifindex",
  "rtnl_addr_get_family",
  "rtnl_addr_get_prefixlen",
  "rtnl_addr_get_scope",
] as const;

/** `ip addr show [dev LINK]` filtered by family. */
export function addrList(
  sock: NlSock,
  options: { link?: string; family?: 4 | 6 } = {},
): AddrInfo[] {
  const { only, names } = listFilter(sock, options.link);
  libnl.need(...DUMP_SYMBOLS);
  const r = libnlRoute.need(
    ...LIST_SYMBOLS,
    ...LOOKUP_SYMBOLS,
    ...LIST_LINK_SYMBOLS,
  );
  return dumpObjects<AddrInfo>(sock, {
    type: RTM_GETADDR,
    family: addressFamily(options.family),
    what: { op: "list", object: "addresses" },
    ...(only === undefined ? {} : { link: only }),
    read: (a, out) => {
      const family = ipVersion(r.rtnl_addr_get_family(a));
      if (family === undefined) return;
      if (options.family !== undefined && options.family !== family) return;
      const index = r.rtnl_addr_get_ifindex(a);
      if (only !== undefined && index !== only) return;
      const ip = nlAddrText(r.rtnl_addr_get_local(a));
      if (ip === undefined) return;
      out.push({
        link: names.get(index) ?? "",
        index,
        cidr: `${ip}/${r.rtnl_addr_get_prefixlen(a)}`,
        family,
        scope: scopeName(r.rtnl_addr_get_scope(a)),
      });
    },
  });
}
