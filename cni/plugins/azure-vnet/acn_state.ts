/**
 * The Go azure-vnet's state files, recognised and converted to ours (#17):
 * pure functions over the parsed documents, so that a node set up by the
 * Go plugin (v0.91 bridge mode) is adopted on our first call with every
 * pod kept.
 *
 * What the Go files look like (see `tests/testdata/acn-v0.91-node/`):
 *
 * - `azure-vnet.json` is `{"Network": {"Version", "TimeStamp",
 *   "ExternalInterfaces": {<master>: {"Name", "BridgeName", "MacAddress",
 *   "IPAddresses", "Routes", "Networks": {<name>: {"Id", "Mode",
 *   "Subnets", "Endpoints": {<id>: {"Id", "IfName", "HostIfName",
 *   "MacAddress", "IPAddresses", "Gateways"}}}}}}}}`;
 * - `azure-vnet-ipam.json` is `{"IPAM": {"Version", "AddressSpaces":
 *   {"local": {"Pools": {<subnet>: {"IfName", "Subnet", "Gateway",
 *   "Addresses": {<ip>: {"ID", "Addr", "InUse"}}}}}}}}`;
 * - MACs and masks are base64 of their raw bytes; the endpoint's
 *   `MacAddress` is the pod side's MAC; the endpoint ID (and the IPAM
 *   record's `ID`) is the first 8 characters of the container ID, `-`, the
 *   ifname; the host veth is `azveth` + 7 characters of it.
 *
 * How they become ours:
 *
 * - each Go network becomes a {@link NetworkRecord} (bridge, master, its
 *   MAC, subnet, gateway, the saved addresses and routes);
 * - each Go endpoint becomes an {@link EndpointRecord} keyed
 *   `acn:<endpoint ID>/<ifname>` (the full container ID is not in the
 *   file; a record that has one, as later Go versions write, keeps it),
 *   with the Go host veth name and `acn` set, so ADD, DEL and CHECK find
 *   it through {@link findAttachment} (DEL and CHECK only with evidence
 *   that the call is about that pod: `findOwnAttachment()` in `adopt.ts`)
 *   and GC by its Go endpoint ID;
 * - each pool becomes ours, its held addresses held by the same key, and
 *   every address an endpoint uses is held even when the Go IPAM file
 *   forgot it (its repeated-ADD bug frees a live pod's address).
 *
 * @module
 */
import { CniError, PLUGIN_CODES, type Result } from "@vnet/cni";
import {
  formatIpv4,
  formatIpv4Cidr,
  formatMac,
  inSubnet,
  isIpv4,
  parseIpv4,
  parseIpv4Cidr,
} from "@vnet/address";
import {
  type AddressRecord,
  type IpamState,
  parseIpamState,
  type PoolState,
} from "@vnet/ipam";
import type { SavedRoute } from "./kernel.ts";
import { endpointKey } from "./names.ts";
import {
  type AzureVnetState,
  emptyState,
  type EndpointRecord,
  type NetworkRecord,
  parseState,
} from "./state.ts";

/** The suffix of the copies of the Go files kept by adoption. */
export const ACN_BACKUP_SUFFIX = ".acn-backup";

/**
 * The container ID prefix of an adopted endpoint whose full container ID
 * is unknown. `:` never occurs in a CNI container ID, so no runtime's
 * attachment can have this key; for the same reason it is never given to
 * an exec'd IPAM (`releaseAdopted()` in `adopt.ts` works in process).
 */
export const ACN_CONTAINER_PREFIX = "acn:";

/** The DNS server the Go plugin put in every result. */
const ACN_DNS = "168.63.129.16";

/** A host link, as adoption reads it (host veth MAC and MTU). */
export interface AcnLinkFact {
  /** The link name. */
  readonly name: string;
  /** Its MAC. */
  readonly mac: string;
  /** Its MTU. */
  readonly mtu: number;
}

/** What {@link convertAcnState} converts. */
export interface AcnConvertInput {
  /** `azure-vnet.json` parsed (Go's or ours), undefined when missing. */
  readonly network: unknown;
  /** `azure-vnet-ipam.json` parsed (Go's or ours), undefined when missing. */
  readonly ipam: unknown;
  /** The host's links (MACs and MTUs the Go files do not keep). */
  readonly links?: readonly AcnLinkFact[];
  /** The two paths, for messages. */
  readonly paths?: { readonly network: string; readonly ipam: string };
}

/** What adoption found and made, for the log and `state adopt`. */
export interface AdoptionReport {
  /** Which files are in the Go format (and so converted). */
  readonly converted: { network: boolean; ipam: boolean };
  /** The Go `Version` of the converted files. */
  readonly version: string;
  /** The networks. */
  readonly networks: {
    name: string;
    bridge: string;
    master: string;
    subnet: string;
    gateway: string;
  }[];
  /** The endpoints adopted. */
  readonly endpoints: {
    key: string;
    endpointId: string;
    hostVeth: string;
    podMac: string;
    addresses: string[];
  }[];
  /** The addresses held after conversion, and by whom. */
  readonly reservations: { ip: string; holder: string }[];
  /** Things worth a look (forgotten reservations, skipped pools). */
  readonly notes: string[];
}

/** The result of {@link convertAcnState}. */
export interface AcnConversion {
  /** Our `azure-vnet.json`. */
  readonly state: AzureVnetState;
  /** Our `azure-vnet-ipam.json` (undefined: none, and none needed). */
  readonly ipam: IpamState | undefined;
  /** True when `ipam` differs from the IPAM file as read. */
  readonly ipamChanged: boolean;
  /** What was done. */
  readonly report: AdoptionReport;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Tells whether a parsed `azure-vnet.json` is the Go plugin's.
 *
 * @param raw The parsed document.
 * @returns True for `{"Network": {...}}` without our `version`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isAcnNetworkDocument } from "./acn_state.ts";
 * assert.equal(isAcnNetworkDocument({ Network: { Version: "v0.91" } }), true);
 * assert.equal(isAcnNetworkDocument({ version: 1, networks: {} }), false);
 * ```
 */
export function isAcnNetworkDocument(raw: unknown): boolean {
  return isObject(raw) && isObject(raw.Network) && !("version" in raw);
}

/**
 * Tells whether a parsed `azure-vnet-ipam.json` is the Go plugin's.
 *
 * @param raw The parsed document.
 * @returns True for `{"IPAM": {...}}` without our `version`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isAcnIpamDocument } from "./acn_state.ts";
 * assert.equal(isAcnIpamDocument({ IPAM: { Version: "v0.91" } }), true);
 * assert.equal(isAcnIpamDocument({ version: 1, pools: {} }), false);
 * ```
 */
export function isAcnIpamDocument(raw: unknown): boolean {
  return isObject(raw) && isObject(raw.IPAM) && !("version" in raw);
}

/**
 * Tells from a state file's first bytes whether the Go plugin wrote it: its
 * documents open with the key `"Network"` or `"IPAM"`, ours with
 * `"version"`. A cheap test for every call; the conversion parses fully.
 *
 * @param text The file's text (its beginning is enough).
 * @returns True when it looks like a Go state document.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { looksLikeAcnText } from "./acn_state.ts";
 * assert.equal(looksLikeAcnText('{\n\t"Network": {'), true);
 * assert.equal(looksLikeAcnText('{\n  "version": 1'), false);
 * ```
 */
export function looksLikeAcnText(text: string): boolean {
  return /^\s*\{\s*"(?:Network|IPAM)"\s*:/.test(text);
}

/**
 * The Go plugin's endpoint ID of an attachment: the first 8 characters of
 * the container ID, `-`, the ifname (what v0.91 keys endpoints and IPAM
 * records by).
 *
 * @param containerId `CNI_CONTAINERID`.
 * @param ifName `CNI_IFNAME`.
 * @returns The ID, such as `acnpod14-eth0`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { legacyEndpointId } from "./acn_state.ts";
 * assert.equal(legacyEndpointId("acnpod148c2cc600dd", "eth0"), "acnpod14-eth0");
 * ```
 */
export function legacyEndpointId(containerId: string, ifName: string): string {
  return `${containerId.slice(0, 8)}-${ifName}`;
}

/** What {@link findAttachment} found. */
export interface FoundAttachment {
  /** The record's key in the state. */
  readonly key: string;
  /** The record. */
  readonly record: EndpointRecord;
  /**
   * True when found by its Go endpoint ID only (an adopted record without
   * the full container ID): another container sharing the first 8
   * characters has the same ID, so the caller needs evidence that the call
   * is about this pod before it acts on it.
   */
  readonly byGoId: boolean;
}

/**
 * The recorded endpoint of an attachment: the record under its key, else
 * an adopted one (`acn` set) without the full container ID (keyed
 * `acn:<Go endpoint ID>`) whose Go endpoint ID is the attachment's and
 * whose ifname matches. An adopted record that kept the full container ID
 * is found by its key only. A record of another network is not returned.
 *
 * @param state The state.
 * @param attachment Container ID, ifname and the calling network.
 * @returns The key and record, and whether only the Go ID matched; or
 * undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findAttachment } from "./acn_state.ts";
 * import { emptyState } from "./state.ts";
 * assert.equal(
 *   findAttachment(emptyState(), { containerId: "c", ifName: "eth0", network: "azure" }),
 *   undefined,
 * );
 * ```
 */
export function findAttachment(
  state: AzureVnetState,
  attachment: { containerId: string; ifName: string; network: string },
): FoundAttachment | undefined {
  const key = endpointKey(attachment.containerId, attachment.ifName);
  const exact = state.endpoints[key];
  if (exact !== undefined) {
    return exact.network === attachment.network
      ? { key, record: exact, byGoId: false }
      : undefined;
  }
  const id = legacyEndpointId(attachment.containerId, attachment.ifName);
  for (const [k, e] of Object.entries(state.endpoints)) {
    if (
      e.acn?.endpointId === id && e.ifName === attachment.ifName &&
      e.network === attachment.network &&
      e.containerId.startsWith(ACN_CONTAINER_PREFIX)
    ) return { key: k, record: e, byGoId: true };
  }
  return undefined;
}

/** Raised on a Go document that cannot be read; becomes code 102. */
function unreadable(path: string, why: string): CniError {
  return new CniError(
    PLUGIN_CODES.corruptState,
    `State file "${path}" was written by the Go azure-vnet but cannot be adopted: ${why}`,
    {
      details:
        "Keep the Go plugin on this node, or drain it and remove the file",
    },
  );
}

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

function bytesOf(b64: string): Uint8Array {
  const bin = atob(b64);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** A Go base64 netmask as a prefix length. */
function maskBits(b64: string): number {
  const bytes = bytesOf(b64);
  let bits = 0;
  let ended = false;
  for (const byte of bytes) {
    for (let i = 7; i >= 0; i--) {
      const one = (byte >> i & 1) === 1;
      if (one && ended) throw new SyntaxError(`non-contiguous mask ${b64}`);
      if (one) bits++;
      else ended = true;
    }
  }
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new SyntaxError(`mask ${b64} is ${bytes.length} bytes`);
  }
  return bits;
}

/** A Go base64 MAC as `aa:bb:cc:dd:ee:ff`. */
function goMac(b64: string): string {
  const bytes = bytesOf(b64);
  if (bytes.length !== 6) throw new SyntaxError(`MAC ${b64} is not 6 bytes`);
  return formatMac(bytes).toLowerCase();
}

/** `{IP, Mask}` as `ip/len`, or undefined for IPv6. */
function goCidr(v: unknown): string | undefined {
  if (!isObject(v)) throw new SyntaxError("address is not an object");
  const ip = str(v.IP);
  const mask = str(v.Mask);
  if (ip === undefined || mask === undefined) {
    throw new SyntaxError("address without IP or Mask");
  }
  if (!isIpv4(ip)) return undefined;
  return `${ip}/${maskBits(mask)}`;
}

function networkCidr(cidr: string): string {
  return formatIpv4Cidr(parseIpv4Cidr(cidr));
}

function goRoute(v: unknown): SavedRoute | undefined {
  if (!isObject(v)) return undefined;
  if (v.Family !== undefined && v.Family !== 2) return undefined;
  const dst = v.Dst === null || v.Dst === undefined
    ? "0.0.0.0/0"
    : goCidr(v.Dst);
  if (dst === undefined) return undefined;
  const route: SavedRoute = {
    dst: dst === "0.0.0.0/0" ? dst : networkCidr(dst),
  };
  const gw = str(v.Gw);
  if (gw !== undefined && gw !== "" && isIpv4(gw)) route.gw = gw;
  if (typeof v.Table === "number") route.table = v.Table;
  if (typeof v.Protocol === "number" && v.Protocol !== 0) {
    route.protocol = v.Protocol;
  }
  if (typeof v.Scope === "number" && v.Scope !== 0) route.scope = v.Scope;
  if (typeof v.Priority === "number" && v.Priority !== 0) {
    route.metric = v.Priority;
  }
  const src = str(v.Src);
  if (src !== undefined && src !== "" && isIpv4(src)) route.src = src;
  return route;
}

/** The ifname part of a Go endpoint ID (`<8 characters>-<ifname>`). */
function ifNameOfId(id: string): string {
  if (id.length > 9 && id[8] === "-") return id.slice(9);
  const dash = id.lastIndexOf("-");
  return dash < 0 ? "" : id.slice(dash + 1);
}

interface Converted {
  networks: Record<string, NetworkRecord>;
  endpoints: Record<string, EndpointRecord>;
  /** Master name -> its MAC (12 hex digits) and addresses. */
  masters: Map<string, { mac: string; addrs: string[] }>;
  version: string;
  notes: string[];
}

function convertNetworkDoc(
  raw: Obj,
  spec: { path: string; links: ReadonlyMap<string, AcnLinkFact> },
): Converted {
  const doc = raw.Network as Obj;
  const version = str(doc.Version) ?? "";
  const out: Converted = {
    networks: {},
    endpoints: {},
    masters: new Map(),
    version,
    notes: [],
  };
  const extIfs = doc.ExternalInterfaces ?? {};
  if (!isObject(extIfs)) {
    throw unreadable(spec.path, `"ExternalInterfaces" is not an object`);
  }
  for (const [ifKey, extIf] of Object.entries(extIfs)) {
    try {
      if (!isObject(extIf)) throw new SyntaxError("not an object");
      const master = str(extIf.Name) ?? ifKey;
      const masterMac = goMac(str(extIf.MacAddress) ?? "");
      const savedAddrs =
        (Array.isArray(extIf.IPAddresses) ? extIf.IPAddresses : []).map(goCidr)
          .filter((c) => c !== undefined);
      const savedRoutes = (Array.isArray(extIf.Routes) ? extIf.Routes : [])
        .map(goRoute).filter((r) => r !== undefined);
      out.masters.set(master, {
        mac: masterMac.replaceAll(":", ""),
        addrs: savedAddrs,
      });
      const nets = extIf.Networks ?? {};
      if (!isObject(nets)) throw new SyntaxError(`"Networks" is no object`);
      for (const [netKey, net] of Object.entries(nets)) {
        if (!isObject(net)) throw new SyntaxError(`network ${netKey}`);
        const name = str(net.Id) ?? netKey;
        const mode = str(net.Mode) ?? "";
        if (mode !== "bridge") {
          throw new SyntaxError(
            `network "${name}" is in mode "${mode}"; only bridge mode can be adopted`,
          );
        }
        const bridge = str(extIf.BridgeName);
        if (bridge === undefined || bridge === "") {
          throw new SyntaxError(`network "${name}" has no bridge`);
        }
        const subnets = Array.isArray(net.Subnets) ? net.Subnets : [];
        const v4 = subnets.filter(isObject).find((s) =>
          goCidr(s.Prefix) !== undefined
        );
        if (v4 === undefined) {
          throw new SyntaxError(`network "${name}" has no IPv4 subnet`);
        }
        const subnet = networkCidr(goCidr(v4.Prefix) ?? "");
        const gateway = str(v4.Gateway) ?? str(extIf.IPv4Gateway) ?? "";
        if (out.networks[name] !== undefined) {
          out.notes.push(
            `network "${name}" appears on two interfaces; kept the one on ${
              out.networks[name]?.master
            }`,
          );
          continue;
        }
        const primary = savedAddrs.find((a) =>
          inSubnet(a.split("/")[0] ?? "", subnet)
        );
        out.networks[name] = {
          name,
          mode: "bridge",
          bridge,
          master,
          masterMac,
          masterMtu: spec.links.get(master)?.mtu ?? 1500,
          subnet,
          gateway,
          ...(primary === undefined
            ? {}
            : { primaryIp: primary.split("/")[0] ?? "" }),
          savedAddrs,
          savedRoutes,
          createdAt: str(doc.TimeStamp) ?? new Date(0).toISOString(),
        };
        const eps = net.Endpoints ?? {};
        if (!isObject(eps)) throw new SyntaxError(`"Endpoints" of ${name}`);
        for (const [epKey, ep] of Object.entries(eps)) {
          const rec = convertEndpoint(ep, {
            id: epKey,
            network: name,
            gateway,
            version,
            links: spec.links,
          });
          out.endpoints[endpointKey(rec.containerId, rec.ifName)] = rec;
        }
      }
    } catch (err) {
      if (err instanceof CniError) throw err;
      throw unreadable(
        spec.path,
        `interface "${ifKey}": ${(err as Error).message}`,
      );
    }
  }
  return out;
}

function convertEndpoint(
  ep: unknown,
  spec: {
    id: string;
    network: string;
    gateway: string;
    version: string;
    links: ReadonlyMap<string, AcnLinkFact>;
  },
): EndpointRecord {
  if (!isObject(ep)) throw new SyntaxError(`endpoint ${spec.id}`);
  const endpointId = str(ep.Id) ?? spec.id;
  const ifName = str(ep.IfName) || ifNameOfId(endpointId);
  const hostVeth = str(ep.HostIfName) ?? "";
  if (hostVeth === "") {
    throw new SyntaxError(`endpoint ${endpointId} has no host veth`);
  }
  const podMac = goMac(str(ep.MacAddress) ?? "");
  const addresses = (Array.isArray(ep.IPAddresses) ? ep.IPAddresses : [])
    .map(goCidr).filter((c) => c !== undefined);
  const full = str(ep.ContainerID) ?? "";
  const containerId = full !== "" ? full : ACN_CONTAINER_PREFIX + endpointId;
  const netns = str(ep.NetNs) || str(ep.SandboxKey) || "";
  const gws = Array.isArray(ep.Gateways) ? ep.Gateways.map(str) : [];
  const gw = gws.find((g) => g !== undefined && isIpv4(g)) ?? spec.gateway;
  const hostLink = spec.links.get(hostVeth);
  const result: Result = {
    cniVersion: "1.1.0",
    interfaces: [
      hostLink === undefined
        ? { name: hostVeth }
        : { name: hostVeth, mac: hostLink.mac },
      netns === ""
        ? { name: ifName, mac: podMac }
        : { name: ifName, mac: podMac, sandbox: netns },
    ],
    ips: addresses.map((address) => ({ address, gateway: gw, interface: 1 })),
    routes: [{ dst: "0.0.0.0/0", gw }],
    dns: { nameservers: [ACN_DNS] },
  };
  return {
    network: spec.network,
    containerId,
    ifName,
    netns,
    hostVeth,
    hostMac: hostLink?.mac ?? "",
    podMac,
    mtu: hostLink?.mtu ?? 1500,
    addresses,
    ipamRoute: "in-process",
    result,
    acn: { endpointId, version: spec.version },
  };
}

/** The holder of an address, as an IPAM record. */
function holderOf(e: EndpointRecord): AddressRecord {
  return { containerId: e.containerId, ifName: e.ifName, network: e.network };
}

function sortedAddresses(
  addresses: Record<string, AddressRecord>,
): Record<string, AddressRecord> {
  const out: Record<string, AddressRecord> = {};
  for (
    const ip of Object.keys(addresses).sort((a, b) =>
      parseIpv4(a) - parseIpv4(b)
    )
  ) {
    const rec = addresses[ip];
    if (rec !== undefined) out[ip] = rec;
  }
  return out;
}

function convertIpamDoc(
  raw: Obj,
  spec: {
    path: string;
    state: AzureVnetState;
    masters: ReadonlyMap<string, { mac: string; addrs: string[] }>;
    notes: string[];
  },
): { ipam: IpamState; version: string } {
  const doc = raw.IPAM as Obj;
  const version = str(doc.Version) ?? "";
  const ipam: IpamState = {
    version: 1,
    lastRefresh: 0,
    bootId: "",
    pools: {},
  };
  const byId = new Map<string, EndpointRecord>();
  const byIp = new Map<string, EndpointRecord>();
  for (const e of Object.values(spec.state.endpoints)) {
    if (e.acn !== undefined) byId.set(e.acn.endpointId, e);
    byId.set(e.containerId, e);
    for (const a of e.addresses) byIp.set(a.split("/")[0] ?? "", e);
  }
  const spaces = doc.AddressSpaces ?? {};
  if (!isObject(spaces)) {
    throw unreadable(spec.path, `"AddressSpaces" is not an object`);
  }
  for (const [spaceKey, space] of Object.entries(spaces)) {
    const pools = isObject(space) ? space.Pools ?? {} : undefined;
    if (!isObject(pools)) {
      throw unreadable(spec.path, `address space "${spaceKey}" has no pools`);
    }
    for (const [poolKey, pool] of Object.entries(pools)) {
      try {
        if (!isObject(pool)) throw new SyntaxError("not an object");
        const cidr = goCidr(pool.Subnet);
        if (pool.IsIPv6 === true || cidr === undefined) {
          spec.notes.push(`IPv6 pool ${poolKey} skipped (IPv4 only)`);
          continue;
        }
        const subnet = networkCidr(cidr);
        if (ipam.pools[subnet] !== undefined) {
          spec.notes.push(`pool ${subnet} appears twice; kept the first`);
          continue;
        }
        const ifName = str(pool.IfName) ?? "";
        const master = spec.masters.get(ifName) ??
          [...Object.values(spec.state.networks)].flatMap((n) =>
            n.mode === "bridge" && n.master === ifName ? [n] : []
          ).map((n) => ({
            mac: n.masterMac.replaceAll(":", ""),
            addrs: n.savedAddrs,
          }))[0];
        const owners = Object.values(spec.state.networks).filter((n) =>
          n.subnet === subnet
        );
        const addresses: Record<string, AddressRecord> = {};
        const recs = pool.Addresses ?? {};
        if (!isObject(recs)) throw new SyntaxError(`"Addresses"`);
        for (const [ipKey, rec] of Object.entries(recs)) {
          if (!isObject(rec)) throw new SyntaxError(`address ${ipKey}`);
          const ip = str(rec.Addr) || ipKey;
          if (!isIpv4(ip) || !inSubnet(ip, subnet)) {
            throw new SyntaxError(`address ${ipKey} outside ${subnet}`);
          }
          const id = str(rec.ID) ?? "";
          if (rec.InUse !== true) {
            addresses[ip] = {};
            continue;
          }
          const ep = (id === "" ? undefined : byId.get(id)) ?? byIp.get(ip);
          if (ep !== undefined) {
            addresses[ip] = holderOf(ep);
            continue;
          }
          const owner = owners.length === 1 ? owners[0]?.name : undefined;
          addresses[ip] = {
            containerId: ACN_CONTAINER_PREFIX + (id === "" ? ip : id),
            ifName: id === "" ? "" : ifNameOfId(id),
            ...(owner === undefined ? {} : { network: owner }),
          };
          spec.notes.push(
            `${ip} is held by "${id}" in the Go IPAM file, but no endpoint records it: kept held (\`deno task state gc\` releases it)`,
          );
        }
        const out: PoolState = {
          subnet,
          gateway: str(pool.Gateway) ?? "",
          macAddress: master?.mac ?? "*",
          priority: typeof pool.Priority === "number" ? pool.Priority : 0,
          primaryIps: (master?.addrs ?? []).map((a) => a.split("/")[0] ?? "")
            .filter((a) => inSubnet(a, subnet)),
          addresses: sortedAddresses(addresses),
        };
        if (ifName !== "") out.ifName = ifName;
        ipam.pools[subnet] = out;
      } catch (err) {
        if (err instanceof CniError) throw err;
        throw unreadable(
          spec.path,
          `pool "${poolKey}": ${(err as Error).message}`,
        );
      }
    }
  }
  return { ipam, version };
}

/**
 * Holds every address of every adopted endpoint in `ipam`: an address the
 * IPAM file does not know or calls free is held by the endpoint (a new ADD
 * must never get it); one held by another attachment is left to it and
 * noted.
 *
 * @returns True when `ipam` was changed.
 */
function holdEndpointAddresses(
  ipam: IpamState,
  spec: { state: AzureVnetState; notes: string[] },
): boolean {
  let changed = false;
  for (const e of Object.values(spec.state.endpoints)) {
    if (e.acn === undefined) continue;
    for (const cidr of e.addresses) {
      const ip = cidr.split("/")[0] ?? "";
      const net = spec.state.networks[e.network];
      let pool = Object.values(ipam.pools).find((p) => inSubnet(ip, p.subnet));
      if (pool === undefined) {
        const subnet = net?.subnet ?? networkCidr(cidr);
        pool = {
          subnet,
          gateway: net?.gateway ??
            formatIpv4(parseIpv4Cidr(subnet).network + 1),
          macAddress: "*",
          priority: 0,
          primaryIps: net?.primaryIp === undefined ? [] : [net.primaryIp],
          addresses: {},
        };
        ipam.pools[subnet] = pool;
        spec.notes.push(`no IPAM pool held ${subnet}: made one for ${ip}`);
      }
      const rec = pool.addresses[ip];
      if (rec?.containerId === undefined) {
        pool.addresses[ip] = holderOf(e);
        pool.addresses = sortedAddresses(pool.addresses);
        changed = true;
        spec.notes.push(
          rec === undefined
            ? `${ip} (endpoint ${e.acn.endpointId}) was not in the IPAM file: now held`
            : `${ip} (endpoint ${e.acn.endpointId}) was free in the IPAM file: now held`,
        );
      } else if (
        rec.containerId !== e.containerId || rec.ifName !== e.ifName
      ) {
        spec.notes.push(
          `${ip} (endpoint ${e.acn.endpointId}) is held by ${rec.containerId}/${
            rec.ifName ?? ""
          }: left to it`,
        );
      } else if (rec.network === undefined) {
        rec.network = e.network;
        changed = true;
      }
    }
  }
  return changed;
}

/**
 * Converts the Go plugin's state files to ours. Either file may already be
 * ours (a conversion interrupted between its two writes): it is validated
 * and kept, and only the held addresses are reconciled.
 *
 * @param input The two parsed documents, the host's links, the paths.
 * @returns Our two documents and a report.
 * @throws {CniError} 102 when a document is neither a valid state of ours
 * nor a Go state that can be adopted (such as a tunnel-mode network).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { convertAcnState } from "./acn_state.ts";
 * const out = convertAcnState({
 *   network: { Network: { Version: "v0.91", ExternalInterfaces: {} } },
 *   ipam: undefined,
 * });
 * assert.deepEqual(out.state.networks, {});
 * assert.equal(out.report.converted.network, true);
 * ```
 */
export function convertAcnState(input: AcnConvertInput): AcnConversion {
  const paths = input.paths ?? {
    network: "azure-vnet.json",
    ipam: "azure-vnet-ipam.json",
  };
  const links = new Map((input.links ?? []).map((l) => [l.name, l]));
  const notes: string[] = [];
  const goNetwork = isAcnNetworkDocument(input.network);
  const goIpam = isAcnIpamDocument(input.ipam);
  let state: AzureVnetState;
  let masters: ReadonlyMap<string, { mac: string; addrs: string[] }> =
    new Map();
  let version = "";
  if (goNetwork) {
    const c = convertNetworkDoc(input.network as Obj, {
      path: paths.network,
      links,
    });
    state = { ...emptyState(), networks: c.networks, endpoints: c.endpoints };
    masters = c.masters;
    version = c.version;
    notes.push(...c.notes);
  } else {
    state = parseState(input.network, paths.network);
  }
  let ipam: IpamState | undefined;
  if (goIpam) {
    const c = convertIpamDoc(input.ipam as Obj, {
      path: paths.ipam,
      state,
      masters,
      notes,
    });
    ipam = c.ipam;
    version ||= c.version;
  } else {
    ipam = parseIpamState(input.ipam, paths.ipam);
  }
  const adopted = Object.values(state.endpoints).some((e) =>
    e.acn !== undefined
  );
  let ipamChanged = goIpam;
  if (adopted) {
    if (ipam === undefined) {
      ipam = { version: 1, lastRefresh: 0, bootId: "", pools: {} };
      ipamChanged = true;
    }
    ipamChanged = holdEndpointAddresses(ipam, { state, notes }) ||
      ipamChanged;
  }
  const reservations: { ip: string; holder: string }[] = [];
  for (const p of Object.values(ipam?.pools ?? {})) {
    for (const [ip, r] of Object.entries(p.addresses)) {
      if (r.containerId !== undefined) {
        reservations.push({
          ip,
          holder: endpointKey(r.containerId, r.ifName ?? ""),
        });
      }
    }
  }
  return {
    state,
    ipam,
    ipamChanged,
    report: {
      converted: { network: goNetwork, ipam: goIpam },
      version,
      networks: Object.values(state.networks).map((n) => ({
        name: n.name,
        bridge: n.mode === "bridge" ? n.bridge : "",
        master: n.master,
        subnet: n.subnet,
        gateway: n.gateway,
      })),
      endpoints: Object.entries(state.endpoints).filter(([, e]) =>
        e.acn !== undefined
      ).map(([key, e]) => ({
        key,
        endpointId: e.acn?.endpointId ?? "",
        hostVeth: e.hostVeth,
        podMac: e.podMac,
        addresses: e.addresses,
      })),
      reservations,
      notes,
    },
  };
}
