/**
 * The {@link Kernel} port on `@vnet/netlink`: one netlink handle per
 * namespace, "absent" mapped to undefined or success.
 *
 * @module
 */
import {
  isCurrentNetns,
  type LinkInfo,
  NetlinkHandle,
  type Protocol,
  type RouteInfo,
  type RouteSpec,
  type Scope,
  sysctlGet,
  sysctlSet,
} from "@vnet/netlink";
import type {
  AddrState,
  Kernel,
  KernelNs,
  LinkState,
  NeighState,
  RouteState,
  VethSpec,
} from "./kernel.ts";

const SCOPES: Record<string, number> = {
  global: 0,
  site: 200,
  link: 253,
  host: 254,
  nowhere: 255,
};

/** The local routing table (routes for our own addresses). */
const RT_TABLE_LOCAL = 255;

function scopeNumber(s: Scope): number {
  return typeof s === "number" ? s : SCOPES[s] ?? 0;
}

function absentOk(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

function toLink(l: LinkInfo): LinkState {
  return {
    name: l.name,
    index: l.index,
    mac: l.mac.toLowerCase(),
    mtu: l.mtu,
    up: l.up,
    masterIndex: l.masterIndex > 0 ? l.masterIndex : undefined,
    kind: l.type === "" ? undefined : l.type,
    peerIndex: l.type === "veth" && l.peerIndex > 0 ? l.peerIndex : undefined,
  };
}

function isDefault(dst: string): boolean {
  return dst === "default" || dst === "0.0.0.0/0" || dst === "::/0";
}

function toRoute(r: RouteInfo, link: string): RouteState {
  return {
    dst: isDefault(r.dst) ? (r.family === 6 ? "::/0" : "0.0.0.0/0") : r.dst,
    link,
    ...(r.gw === undefined ? {} : { gw: r.gw }),
    table: r.table,
    protocol: r.protocol,
    scope: r.scope,
    ...(r.metric === undefined ? {} : { metric: r.metric }),
    ...(r.src === undefined ? {} : { src: r.src }),
    ...(r.onlink === true ? { onlink: true } : {}),
  };
}

function toSpec(r: RouteState): RouteSpec {
  const spec: RouteSpec = {
    dst: r.dst === "0.0.0.0/0" ? "default" : r.dst,
    link: r.link,
  };
  if (r.gw !== undefined) spec.gw = r.gw;
  if (r.table !== undefined) spec.table = r.table;
  if (r.protocol !== undefined) spec.protocol = r.protocol as Protocol;
  if (r.scope !== undefined) spec.scope = r.scope as Scope;
  if (r.metric !== undefined) spec.metric = r.metric;
  if (r.src !== undefined) spec.src = r.src;
  if (r.onlink === true) spec.onlink = true;
  return spec;
}

class NetlinkKernelNs implements KernelNs {
  #h: NetlinkHandle;
  /** The netns path, undefined for the namespace the process runs in. */
  #path: string | undefined;

  constructor(h: NetlinkHandle, path: string | undefined) {
    this.#h = h;
    this.#path = path;
  }

  link(name: string): LinkState | undefined {
    try {
      return toLink(this.#h.linkByName(name));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  links(): LinkState[] {
    return this.#h.linkList().map(toLink);
  }

  addrs(link: string): AddrState[] {
    return this.#h.addrList({ link }).map((a) => ({
      cidr: a.cidr,
      family: a.family,
      scope: scopeNumber(a.scope),
    }));
  }

  routes(link: string): RouteState[] {
    return this.#h.routeList({ table: 0, link })
      .filter((r) => r.table !== RT_TABLE_LOCAL)
      .map((r) => toRoute(r, link));
  }

  addBridge(spec: { name: string; mtu: number; mac: string }): void {
    this.#h.linkAddBridge(spec);
  }

  addVeth(spec: VethSpec): void {
    this.#h.linkAddVeth({
      name: spec.name,
      peerName: spec.peerName,
      peerNetns: spec.peerNetns,
      mtu: spec.mtu,
      peerMtu: spec.mtu,
    });
  }

  delLinkSync(name: string): void {
    absentOk(() => this.#h.linkDelSync(name));
  }

  async delLink(name: string): Promise<void> {
    try {
      await this.#h.linkDel(name);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }

  setUp(name: string): void {
    this.#h.linkSetUp(name);
  }

  setDown(name: string): void {
    this.#h.linkSetDown(name);
  }

  setMaster(name: string, master: string | undefined): void {
    if (master === undefined) this.#h.linkSetNoMaster(name);
    else this.#h.linkSetMaster(name, master);
  }

  setHairpin(name: string, options: { on: boolean }): void {
    this.#h.linkSetHairpin(name, options);
  }

  addrAdd(link: string, cidr: string, options?: { nodad?: boolean }): void {
    try {
      this.#h.addrAdd(link, cidr, options);
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
  }

  addrDel(link: string, cidr: string): void {
    if (!this.#h.addrList({ link }).some((a) => a.cidr === cidr)) return;
    absentOk(() => this.#h.addrDel(link, cidr));
  }

  routeReplace(route: RouteState): void {
    this.#h.routeReplace(toSpec(route));
  }

  routeDel(route: RouteState): void {
    absentOk(() => this.#h.routeDel(toSpec(route)));
  }

  neighSet(link: string, neigh: { ip: string; mac: string }): void {
    this.#h.neighSet({ link, ip: neigh.ip, mac: neigh.mac });
  }

  neighDel(link: string, ip: string): void {
    absentOk(() => this.#h.neighDel({ link, ip }));
  }

  neighMac(link: string, ip: string): string | undefined {
    try {
      return this.#h.neighList({ link }).find((n) => n.ip === ip)?.mac
        ?.toLowerCase();
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  neighs(link: string): NeighState[] {
    try {
      return this.#h.neighList({ link }).map((n) => ({
        ip: n.ip,
        mac: n.mac?.toLowerCase(),
        permanent: n.state.includes("permanent"),
      }));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
  }

  sysctl(key: string): string | undefined {
    try {
      return sysctlGet(this.#path, key);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
  }

  setSysctl(key: string, value: string): void {
    sysctlSet(this.#path, key, value);
  }

  [Symbol.dispose](): void {
    this.#h.close();
  }
}

/**
 * The kernel port over netlink.
 *
 * Requires CAP_NET_ADMIN in the namespaces it opens.
 *
 * @returns A {@link Kernel}.
 *
 * @tags allow-ffi, allow-read
 *
 * @example Usage
 * ```ts ignore
 * import { netlinkKernel } from "./netlink_kernel.ts";
 * using host = netlinkKernel().host();
 * host.link("eth0");
 * ```
 */
export function netlinkKernel(): Kernel {
  return {
    host: () => new NetlinkKernelNs(NetlinkHandle.open(), undefined),
    netns: (path) => new NetlinkKernelNs(NetlinkHandle.openNetns(path), path),
    isHostNetns: isCurrentNetns,
  };
}
