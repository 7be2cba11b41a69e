/**
 * An in-memory {@link Kernel} for unit tests: links, addresses, routes and
 * neighbours per namespace, veth peers across namespaces.
 *
 * @module
 */
import type {
  AddrState,
  Kernel,
  KernelNs,
  LinkState,
  NeighState,
  RouteState,
  VethSpec,
} from "./kernel.ts";

interface FakeLink {
  name: string;
  index: number;
  mac: string;
  mtu: number;
  up: boolean;
  master: string | undefined;
  kind: string | undefined;
  peer?: { ns: FakeNs; name: string };
  /** The bridge-port hairpin flag, once set. */
  hairpin?: boolean;
}

let nextIndex = 100;

/** The path under which the fake host namespace is known. */
export const HOST_PATH = "/proc/self/ns/net";

function mac(n: number): string {
  return `02:00:00:00:${(n >> 8).toString(16).padStart(2, "0")}:${
    (n & 255).toString(16).padStart(2, "0")
  }`;
}

/** One fake namespace. */
export class FakeNs implements KernelNs {
  /** Links by name. */
  readonly linksByName = new Map<string, FakeLink>();
  /** Addresses by link. */
  readonly addrMap = new Map<string, AddrState[]>();
  /** Routes. */
  routeList: RouteState[] = [];
  /** Addresses added with `nodad`, as `link/cidr`. */
  readonly nodad = new Set<string>();
  /** Neighbours `link/ip` -> MAC. */
  readonly neigh = new Map<string, string>();
  /**
   * Sysctls by key (both forwarding switches start at "0"); the per-link
   * `net.ipv4.conf.<link>.*` keys exist only while the link does.
   */
  readonly sysctls = new Map<string, string>([
    ["net.ipv4.ip_forward", "0"],
    ["net.ipv6.conf.all.forwarding", "0"],
  ]);
  #kernel: FakeKernel;

  constructor(kernel: FakeKernel) {
    this.#kernel = kernel;
  }

  /** Adds a plain link (test setup). */
  addLink(name: string, extra: Partial<FakeLink> = {}): void {
    const index = nextIndex++;
    this.linksByName.set(name, {
      name,
      index,
      mac: mac(index),
      mtu: 1500,
      up: true,
      master: undefined,
      kind: undefined,
      ...extra,
    });
  }

  #get(name: string): FakeLink {
    const l = this.linksByName.get(name);
    if (l === undefined) throw new Deno.errors.NotFound(`No link "${name}"`);
    return l;
  }

  link(name: string): LinkState | undefined {
    const l = this.linksByName.get(name);
    if (l === undefined) return undefined;
    return {
      name: l.name,
      index: l.index,
      mac: l.mac,
      mtu: l.mtu,
      up: l.up,
      masterIndex: l.master === undefined
        ? undefined
        : this.linksByName.get(l.master)?.index,
      kind: l.kind,
      peerIndex: l.peer?.ns.linksByName.get(l.peer.name)?.index,
    };
  }

  links(): LinkState[] {
    return [...this.linksByName.keys()].flatMap((n) => this.link(n) ?? []);
  }

  addrs(link: string): AddrState[] {
    return [...(this.addrMap.get(link) ?? [])];
  }

  routes(link: string): RouteState[] {
    return this.routeList.filter((r) => r.link === link);
  }

  addBridge(spec: { name: string; mtu: number; mac: string }): void {
    if (this.linksByName.has(spec.name)) {
      throw new Deno.errors.AlreadyExists(spec.name);
    }
    this.addLink(spec.name, { mtu: spec.mtu, mac: spec.mac, kind: "bridge" });
  }

  addVeth(spec: VethSpec): void {
    this.#kernel.calls.push(`addVeth ${spec.name}`);
    const peerNs = this.#kernel.namespaces.get(spec.peerNetns);
    if (peerNs === undefined) throw new Deno.errors.NotFound(spec.peerNetns);
    if (
      this.linksByName.has(spec.name) || peerNs.linksByName.has(spec.peerName)
    ) {
      throw new Deno.errors.AlreadyExists(spec.name);
    }
    this.addLink(spec.name, {
      mtu: spec.mtu,
      up: false,
      kind: "veth",
      peer: { ns: peerNs, name: spec.peerName },
    });
    peerNs.addLink(spec.peerName, {
      mtu: spec.mtu,
      up: false,
      kind: "veth",
      peer: { ns: this, name: spec.name },
    });
  }

  delLink(name: string): Promise<void> {
    this.delLinkSync(name);
    return Promise.resolve();
  }

  delLinkSync(name: string): void {
    const l = this.linksByName.get(name);
    if (l === undefined) return;
    this.#forget(name);
    if (l.peer !== undefined) l.peer.ns.#forget(l.peer.name);
  }

  /** What the kernel drops with a link: it, its addresses, routes, neighbours, sysctls. */
  #forget(name: string): void {
    this.linksByName.delete(name);
    this.addrMap.delete(name);
    for (const k of [...this.nodad]) {
      if (k.startsWith(`${name}/`)) this.nodad.delete(k);
    }
    this.routeList = this.routeList.filter((r) => r.link !== name);
    for (const k of [...this.neigh.keys()]) {
      if (k.startsWith(`${name}/`)) this.neigh.delete(k);
    }
    for (const k of [...this.sysctls.keys()]) {
      if (k.includes(`.conf.${name}.`)) this.sysctls.delete(k);
    }
  }

  setUp(name: string): void {
    this.#get(name).up = true;
  }

  setDown(name: string): void {
    this.#get(name).up = false;
  }

  setMaster(name: string, master: string | undefined): void {
    if (master !== undefined && this.#get(master).kind !== "bridge") {
      throw new Error(`"${master}" is no bridge`);
    }
    this.#get(name).master = master;
  }

  setHairpin(name: string, options: { on: boolean }): void {
    this.#get(name).hairpin = options.on;
  }

  addrAdd(link: string, cidr: string, options?: { nodad?: boolean }): void {
    this.#get(link);
    const list = this.addrMap.get(link) ?? [];
    if (!list.some((a) => a.cidr === cidr)) {
      const family = cidr.includes(":") ? 6 : 4;
      const scope = cidr.startsWith("fe80:") ? 253 : 0;
      list.push({ cidr, family, scope });
      if (options?.nodad === true) this.nodad.add(`${link}/${cidr}`);
    }
    this.addrMap.set(link, list);
  }

  addrDel(link: string, cidr: string): void {
    const list = this.addrMap.get(link) ?? [];
    this.addrMap.set(link, list.filter((a) => a.cidr !== cidr));
    this.routeList = this.routeList.filter((r) => r.link !== link);
  }

  routeReplace(route: RouteState): void {
    this.#get(route.link);
    this.routeDel(route);
    this.routeList.push(route);
  }

  routeDel(route: RouteState): void {
    this.routeList = this.routeList.filter((r) =>
      !(r.dst === route.dst && r.link === route.link)
    );
  }

  neighSet(link: string, neigh: { ip: string; mac: string }): void {
    this.#get(link);
    this.neigh.set(`${link}/${neigh.ip}`, neigh.mac);
  }

  neighDel(link: string, ip: string): void {
    this.neigh.delete(`${link}/${ip}`);
  }

  neighMac(link: string, ip: string): string | undefined {
    return this.neigh.get(`${link}/${ip}`);
  }

  neighs(link: string): NeighState[] {
    return [...this.neigh].flatMap(([k, mac]) => {
      const [l, ip] = k.split("/");
      return l === link && ip !== undefined
        ? [{ ip, mac, permanent: true }]
        : [];
    });
  }

  #linkOfKey(key: string): string | undefined {
    return /^net\.ipv[46]\.conf\.([^.]+)\./.exec(key)?.[1];
  }

  sysctl(key: string): string | undefined {
    const link = this.#linkOfKey(key);
    if (link !== undefined && link !== "all" && link !== "default") {
      if (!this.linksByName.has(link)) return undefined;
      return this.sysctls.get(key) ?? "0";
    }
    return this.sysctls.get(key);
  }

  setSysctl(key: string, value: string): void {
    this.#kernel.calls.push(`sysctl ${key}=${value}`);
    if (this.sysctl(key) === undefined) {
      throw new Deno.errors.NotFound(`No sysctl "${key}"`);
    }
    this.sysctls.set(key, value);
  }

  [Symbol.dispose](): void {}
}

/** The fake kernel: a host namespace plus namespaces by path. */
export class FakeKernel implements Kernel {
  /** Namespaces by path. */
  readonly namespaces = new Map<string, FakeNs>();
  /** The host namespace. */
  readonly hostNs: FakeNs;
  /** Recorded calls. */
  readonly calls: string[] = [];

  constructor() {
    this.hostNs = new FakeNs(this);
  }

  /** Adds a pod namespace. */
  addNetns(path: string): FakeNs {
    const ns = new FakeNs(this);
    ns.addLink("lo", { up: false });
    this.namespaces.set(path, ns);
    return ns;
  }

  host(): KernelNs {
    return this.hostNs;
  }

  netns(path: string): KernelNs {
    const ns = this.namespaces.get(path);
    if (ns === undefined) throw new Deno.errors.NotFound(path);
    return ns;
  }

  isHostNetns(path: string): boolean {
    if (path === HOST_PATH) return true;
    if (!this.namespaces.has(path)) throw new Deno.errors.NotFound(path);
    return false;
  }
}
