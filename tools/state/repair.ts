/**
 * `state repair`: the recovery path for a corrupt state file (the code 102
 * messages point here).
 *
 * A file that parses is left alone. A corrupt one is copied aside
 * (`<file>.corrupt-<hash>`, 0600, one per distinct content) and rebuilt under its lock:
 *
 * - `azure-vnet-ipam.json` from the endpoints in `azure-vnet.json` (every
 *   address held under its container id and ifname), plus any pod address
 *   the kernel still shows (a per-pod DNAT rule) that no endpoint claims,
 *   held as `recovered-<ip>`. `lastRefresh` is 0, so the next ADD refreshes
 *   from the source and the free addresses come back.
 * - `azure-vnet.json` from the kernel, best effort: the bridge and its
 *   master (network record, addresses and routes to restore), the `azv*`
 *   veths on it, the pod MACs and addresses from the per-pod DNAT rules and
 *   bridge neighbours, the pod netns by scanning the named netns for the
 *   veth peer, and the container id and ifname from the IPAM file when it
 *   parses (checked against the veth name). What cannot be recovered is
 *   said in the notes.
 *
 * @module
 */
import {
  CniError,
  type IpConfig,
  keepCorruptCopy,
  PLUGIN_CODES,
  type Route,
  withStateLock,
} from "@vnet/cni";
import {
  IPAM_STATE_FILE,
  type IpamState,
  parseIpamState,
  readIpamState,
} from "@vnet/ipam";
import {
  acnStatePresent,
  type AzureVnetState,
  Ebtables,
  emptyState,
  endpointKey,
  type EndpointRecord,
  HOST_VETH_PREFIX,
  hostVethName,
  type Kernel,
  type KernelNs,
  type LinkState,
  netlinkKernel,
  networkFromKernel,
  parseSpoofRule,
  parseState,
  STATE_FILE_NAME,
  statePath,
  transparentNetworkFromKernel,
  type TransparentNetworkRecord,
  transparentRoutes,
  type TransparentVeth,
} from "@vnet/azure-vnet";
import {
  type ExtraHold,
  ipamFromEndpoints,
  ipInSubnet,
  parsePodDnatRules,
} from "./rebuild.ts";

/** The files `repair` knows. */
export type StateFileName = typeof STATE_FILE_NAME | typeof IPAM_STATE_FILE;

/** Options of {@link repairState}. */
export interface RepairOptions {
  /** Only this file (default: both, `azure-vnet.json` first). */
  file?: StateFileName;
  /** The network name to record (default `azure`; not in the kernel). */
  network?: string;
  /** The bridge (default: found: the bridge holding azv* veths or the master). */
  bridge?: string;
  /** Where named netns are mounted (default `/var/run/netns`). */
  netnsDirs?: readonly string[];
  /** The kernel port (default netlink). */
  kernel?: Kernel;
  /** The ebtables driver. */
  ebtables?: Ebtables;
  /** Reads a host link's peer ifindex (default `/sys/class/net/X/iflink`). */
  peerIndex?: (link: string) => number | undefined;
}

/** What happened to one file. */
export interface FileRepair {
  /** The file name. */
  readonly file: StateFileName;
  /** `ok` (parses), `missing`, `rebuilt`. */
  status: "ok" | "missing" | "rebuilt";
  /** Where the corrupt file was kept. */
  aside?: string;
  /** Endpoints (azure-vnet.json) or holds (IPAM) written. */
  items: string[];
  /** What could not be recovered, and other remarks. */
  notes: string[];
}

/** What {@link repairState} did. */
export interface RepairReport {
  /** One entry per file examined. */
  readonly files: FileRepair[];
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Parses with the plugin's own validator; the failure, or undefined. */
function problemOf(
  text: string,
  validate: (v: unknown) => unknown,
): string | undefined {
  if (text.trim() === "") return "the file is empty";
  try {
    validate(JSON.parse(text));
    return undefined;
  } catch (err) {
    return (err instanceof Error ? err.message : String(err))
      .replace(/\s+/g, " ").trim();
  }
}

function sysPeerIndex(link: string): number | undefined {
  try {
    const n = Number(Deno.readTextFileSync(`/sys/class/net/${link}/iflink`));
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Repairs corrupt state files in `stateDir`; files that parse are left
 * alone.
 *
 * Requires CAP_NET_ADMIN (kernel reads, netns scan) and the `ebtables`
 * binary when `azure-vnet.json` must be rebuilt.
 *
 * @param stateDir The state directory.
 * @param options File, network and bridge names, injectable kernel.
 * @returns One entry per file.
 * @throws {CniError} 102 when the IPAM file must be rebuilt but
 * `azure-vnet.json` is corrupt too and was not selected; 11 on a lock
 * timeout.
 *
 * @tags allow-ffi, allow-run, allow-read, allow-write
 *
 * @example Usage
 * ```ts ignore
 * const report = await repairState("/var/run", { file: "azure-vnet-ipam.json" });
 * ```
 */
export async function repairState(
  stateDir: string,
  options: RepairOptions = {},
): Promise<RepairReport> {
  // The Go azure-vnet's files are no damage: rebuilding them would lose
  // its endpoints' records (#17).
  if (await acnStatePresent(stateDir)) {
    throw new CniError(
      PLUGIN_CODES.corruptState,
      `The state files in "${stateDir}" were written by the Go azure-vnet: convert them with \`deno task state adopt\`, not repair`,
    );
  }
  const files: StateFileName[] = options.file === undefined
    ? [STATE_FILE_NAME, IPAM_STATE_FILE]
    : [options.file];
  const out: FileRepair[] = [];
  for (const f of files) {
    out.push(
      f === STATE_FILE_NAME
        ? await repairNetworkFile(stateDir, options)
        : await repairIpamFile(stateDir, options),
    );
  }
  return { files: out };
}

async function repairIpamFile(
  stateDir: string,
  options: RepairOptions,
): Promise<FileRepair> {
  const path = `${stateDir}/${IPAM_STATE_FILE}`;
  const rep: FileRepair = {
    file: IPAM_STATE_FILE,
    status: "ok",
    items: [],
    notes: [],
  };
  // The network state is read first, outside the IPAM lock (atomic writes
  // make an unlocked read consistent), so the two locks never nest.
  let net: AzureVnetState;
  let netProblem: string | undefined;
  const netText = readText(statePath(stateDir));
  try {
    if (netText !== undefined && netText.trim() === "") {
      throw new SyntaxError("the file is empty");
    }
    net = parseState(
      netText === undefined ? undefined : JSON.parse(netText),
      statePath(stateDir),
    );
  } catch (err) {
    net = emptyState();
    netProblem = `azure-vnet.json cannot be used (${
      err instanceof Error ? err.message : String(err)
    })`;
  }
  await withStateLock(path, async (file) => {
    const text = readText(file.path);
    if (text === undefined) {
      rep.status = "missing";
      return;
    }
    const problem = problemOf(text, (v) => parseIpamState(v, path));
    if (problem === undefined) return;
    if (netProblem !== undefined) {
      throw new CniError(
        PLUGIN_CODES.corruptState,
        `Cannot rebuild "${path}": ${netProblem}; repair azure-vnet.json first`,
      );
    }
    rep.notes.push(`was corrupt: ${problem}`);
    const kernelPods = await kernelPodAddresses(net, options).catch((err) => {
      rep.notes.push(
        `kernel pod addresses cannot be read: ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
      return [] as { ip: string; subnet: string }[];
    });
    const claimed = new Set(
      Object.values(net.endpoints).flatMap((e) =>
        e.addresses.map((a) => a.split("/")[0])
      ),
    );
    const extra: ExtraHold[] = kernelPods.filter((p) => !claimed.has(p.ip))
      .map((p) => ({
        ip: p.ip,
        subnet: p.subnet,
        containerId: `recovered-${p.ip}`,
        ifName: "",
      }));
    for (const x of extra) {
      rep.notes.push(
        `${x.ip} is in use in the kernel (DNAT rule) but no endpoint claims it: held as ${x.containerId}`,
      );
    }
    const built = ipamFromEndpoints(net, { extra });
    rep.aside = await keepCorruptCopy(file.path);
    await file.write(built.ipam);
    rep.status = "rebuilt";
    rep.items.push(...built.held);
    rep.notes.push(...built.notes);
    rep.notes.push(
      "free addresses return at the next ADD (lastRefresh 0 forces a refresh from the source)",
    );
  });
  return rep;
}

/** Pod addresses the kernel shows (per-pod DNAT rules on recorded masters). */
async function kernelPodAddresses(
  net: AzureVnetState,
  options: RepairOptions,
): Promise<{ ip: string; subnet: string }[]> {
  const nets = Object.values(net.networks);
  if (nets.length === 0) return [];
  const ebtables = options.ebtables ?? new Ebtables();
  const rules = parsePodDnatRules(await ebtables.list("PREROUTING"));
  const out: { ip: string; subnet: string }[] = [];
  for (const r of rules) {
    const n = nets.find((x) =>
      x.master === r.master && ipInSubnet(r.ip, x.subnet)
    );
    if (n !== undefined) out.push({ ip: r.ip, subnet: n.subnet });
  }
  return out;
}

async function repairNetworkFile(
  stateDir: string,
  options: RepairOptions,
): Promise<FileRepair> {
  const path = statePath(stateDir);
  const rep: FileRepair = {
    file: STATE_FILE_NAME,
    status: "ok",
    items: [],
    notes: [],
  };
  let ipam: IpamState | undefined;
  try {
    ipam = await readIpamState(`${stateDir}/${IPAM_STATE_FILE}`);
  } catch (err) {
    rep.notes.push(
      `IPAM file unusable for container ids (${
        err instanceof Error ? err.message : String(err)
      })`,
    );
  }
  await withStateLock(path, async (file) => {
    const text = readText(file.path);
    if (text === undefined) {
      rep.status = "missing";
      return;
    }
    const problem = problemOf(text, (v) => parseState(v, path));
    if (problem === undefined) {
      rep.notes = [];
      return;
    }
    rep.notes.unshift(`was corrupt: ${problem}`);
    const state = await stateFromKernel(ipam, { ...options, notes: rep.notes });
    rep.aside = await keepCorruptCopy(file.path);
    await file.write(state);
    rep.status = "rebuilt";
    rep.items.push(
      ...Object.values(state.networks).map((n) =>
        `network ${n.name} (${
          n.mode === "bridge" ? `bridge ${n.bridge}` : n.mode
        }, master ${n.master}, ${n.subnet})`
      ),
      ...Object.entries(state.endpoints).map(([k, e]) =>
        `endpoint ${k} ${e.hostVeth} ${e.addresses.join(",") || "-"} ${
          e.netns || "(netns unknown)"
        }`
      ),
    );
  });
  return rep;
}

interface PodLink {
  readonly netns: string;
  readonly ifName: string;
  readonly index: number;
  readonly mac: string;
}

/**
 * The links of the namespaces mounted in `dirs` that `match` picks (the
 * node's own namespace skipped with `skipHost`).
 */
function podLinks(
  kernel: Kernel,
  spec: {
    dirs: readonly string[];
    match: (l: LinkState) => boolean;
    skipHost?: boolean;
  },
): PodLink[] {
  const out: PodLink[] = [];
  for (const dir of spec.dirs) {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      continue;
    }
    for (const e of entries) {
      const path = `${dir}/${e.name}`;
      let ns: KernelNs;
      try {
        if (spec.skipHost === true && kernel.isHostNetns(path)) continue;
        ns = kernel.netns(path);
      } catch {
        continue;
      }
      using h = ns;
      for (const l of h.links()) {
        if (spec.match(l)) {
          out.push({ netns: path, ifName: l.name, index: l.index, mac: l.mac });
        }
      }
    }
  }
  return out;
}

function scanPods(
  kernel: Kernel,
  dirs: readonly string[],
  macs: ReadonlySet<string>,
): PodLink[] {
  return podLinks(kernel, { dirs, match: (l) => macs.has(l.mac) });
}

/** An endpoint record rebuilt from its host veth and what was found. */
function recoveredEndpoint(spec: {
  network: string;
  containerId: string;
  ifName: string;
  netns: string;
  veth: LinkState;
  podMac: string;
  addresses: string[];
  ips: IpConfig[];
  routes: Route[];
  /** The veth has anti-spoofing rules (bridge mode). */
  spoofCheck?: boolean;
}): EndpointRecord {
  const { veth: v, ifName, netns, podMac } = spec;
  return {
    network: spec.network,
    containerId: spec.containerId,
    ifName,
    netns,
    hostVeth: v.name,
    hostMac: v.mac,
    podMac,
    mtu: v.mtu,
    addresses: spec.addresses,
    ipamRoute: "in-process",
    result: {
      cniVersion: "1.1.0",
      interfaces: [
        { name: v.name, mac: v.mac },
        { name: ifName, mac: podMac, sandbox: netns, mtu: v.mtu },
      ],
      ips: spec.ips.map((ip) => ({ ...ip, interface: 1 })),
      routes: spec.routes,
    },
    ...(spec.spoofCheck === true ? { spoofCheck: true } : {}),
  };
}

/**
 * The pod end of a host veth: a link in one of `dirs`' namespaces that is
 * its veth peer (each names the other's ifindex).
 */
function podOfVeth(
  kernel: Kernel,
  spec: { dirs: readonly string[]; veth: LinkState },
): PodLink | undefined {
  const { veth } = spec;
  return podLinks(kernel, {
    dirs: spec.dirs,
    match: (l) => l.peerIndex === veth.index && veth.peerIndex === l.index,
    skipHost: true,
  })[0];
}

/**
 * `azure-vnet.json` of a transparent network, from what
 * `transparentNetworkFromKernel()` found: an endpoint per routed host
 * veth, keyed by the IPAM hold of its addresses (checked against the veth
 * name), its pod end found by veth peering.
 */
async function transparentState(
  kernel: Kernel,
  spec: {
    network: TransparentNetworkRecord;
    veths: TransparentVeth[];
    ipam: IpamState | undefined;
    options: RepairOptions & { notes: string[] };
    defaultName: boolean;
  },
): Promise<AzureVnetState> {
  const { network: net, options } = spec;
  const notes = options.notes;
  const state = emptyState();
  state.networks[net.name] = net;
  notes.push(
    `network ${net.name}: transparent mode (no bridge); teardown leaves forwarding on`,
  );
  if (spec.defaultName) {
    notes.push(`network name "${net.name}" assumed (pass --network otherwise)`);
  }
  const holds = new Map<string, { containerId: string; ifName: string }>();
  for (const p of Object.values(spec.ipam?.pools ?? {})) {
    for (const [ip, rec] of Object.entries(p.addresses)) {
      if (rec.containerId === undefined) continue;
      holds.set(ip, { containerId: rec.containerId, ifName: rec.ifName ?? "" });
    }
  }
  const dirs = options.netnsDirs ?? ["/var/run/netns"];
  for (const { link: v, addresses } of spec.veths) {
    let key = addresses.map((a) => holds.get(a.split("/")[0] ?? ""))
      .find((k) => k !== undefined);
    if (key !== undefined && (await hostVethName(net.name, key)) !== v.name) {
      notes.push(
        `veth ${v.name}: the IPAM holds its address for ${key.containerId}, whose veth would have another name`,
      );
      key = undefined;
    }
    const pod = podOfVeth(kernel, { dirs, veth: v });
    const ifName = key?.ifName ?? pod?.ifName ?? "eth0";
    const containerId = key?.containerId ?? `recovered-${v.name}`;
    if (key === undefined) {
      notes.push(
        `veth ${v.name}: container id unknown: recorded as ${containerId}; gc removes it once the veth is gone`,
      );
    }
    if (pod === undefined) {
      notes.push(
        `veth ${v.name}: pod netns not found under ${
          dirs.join(", ")
        }; netns left empty`,
      );
    }
    const netns = pod?.netns ?? "";
    const podMac = pod?.mac ?? "";
    state.endpoints[endpointKey(containerId, ifName)] = recoveredEndpoint({
      network: net.name,
      containerId,
      ifName,
      netns,
      veth: v,
      podMac,
      addresses,
      ...transparentRoutes(addresses),
    });
  }
  return state;
}

/** Rebuilds `azure-vnet.json` from the kernel (best effort). */
async function stateFromKernel(
  ipam: IpamState | undefined,
  options: RepairOptions & { notes: string[] },
): Promise<AzureVnetState> {
  const notes = options.notes;
  const kernel = options.kernel ?? netlinkKernel();
  const ebtables = options.ebtables ?? new Ebtables();
  const peerIndex = options.peerIndex ?? sysPeerIndex;
  const name = options.network ?? "azure";
  const state = emptyState();
  using host = kernel.host();
  const found = networkFromKernel(host, {
    name,
    bridge: options.bridge,
    pools: Object.values(ipam?.pools ?? {}),
  });
  if (found.network === undefined) {
    const routed = transparentNetworkFromKernel(host, {
      name,
      pools: Object.values(ipam?.pools ?? {}),
    });
    if (routed.network === undefined) {
      notes.push(found.problem);
      return state;
    }
    return await transparentState(kernel, {
      ...routed,
      ipam,
      options,
      defaultName: options.network === undefined,
    });
  }
  const net = found.network;
  const { subnet, gateway } = net;
  const pools = Object.values(ipam?.pools ?? {});
  const links = host.links();
  const bridge = host.link(net.bridge);
  if (bridge === undefined) {
    notes.push(`bridge ${net.bridge} vanished while reading it: run again`);
    return emptyState();
  }
  state.networks[name] = net;
  if (options.network === undefined) {
    notes.push(`network name "${name}" assumed (pass --network otherwise)`);
  }

  // Pod IP -> MAC: the per-pod DNAT rules, then the bridge neighbours of
  // addresses the IPAM file holds.
  const macOf = new Map<string, string>();
  const prerouting = await ebtables.list("PREROUTING");
  // Veths with anti-spoofing rules: their records say so, so that DEL
  // removes the rules and CHECK expects them.
  const spoofVeths = new Set(
    prerouting.map((l) => parseSpoofRule(l.split(/\s+/))?.hostVeth),
  );
  for (const r of parsePodDnatRules(prerouting)) {
    if (r.master === net.master && ipInSubnet(r.ip, subnet)) {
      macOf.set(r.ip, r.mac);
    }
  }
  const holds = new Map<string, { containerId: string; ifName: string }>();
  for (const p of pools) {
    for (const [ip, rec] of Object.entries(p.addresses)) {
      if (rec.containerId === undefined) continue;
      holds.set(ip, { containerId: rec.containerId, ifName: rec.ifName ?? "" });
      if (!macOf.has(ip)) {
        const mac = host.neighMac(net.bridge, ip);
        if (mac !== undefined) macOf.set(ip, mac);
      }
    }
  }
  const ipsOf = new Map<string, string[]>();
  for (const [ip, mac] of macOf) {
    ipsOf.set(mac, [...(ipsOf.get(mac) ?? []), ip]);
  }
  const pods = scanPods(
    kernel,
    options.netnsDirs ?? ["/var/run/netns"],
    new Set(macOf.values()),
  );
  const prefix = subnet.split("/")[1] ?? "32";
  const veths = links.filter((l) =>
    l.masterIndex === bridge.index && l.name.startsWith(HOST_VETH_PREFIX)
  );
  const used = new Set<string>();
  const claimedPods = new Set<PodLink>();
  for (const v of veths) {
    // The IPAM key whose derived veth name is this veth.
    let key: { containerId: string; ifName: string } | undefined;
    const keyIps: string[] = [];
    for (const [ip, k] of holds) {
      if ((await hostVethName(name, k)) === v.name) {
        key = k;
        keyIps.push(ip);
      }
    }
    // The pod end: by the MAC of the key's addresses; else by the peer
    // ifindex, which only helps when unambiguous (indexes are per netns).
    const keyMac = keyIps.map((ip) => macOf.get(ip)).find((m) =>
      m !== undefined
    );
    const peer = peerIndex(v.name);
    const byPeer = pods.filter((p) => p.index === peer && !claimedPods.has(p));
    const pod = keyMac !== undefined
      ? pods.find((p) => p.mac === keyMac)
      : byPeer.length === 1
      ? byPeer[0]
      : undefined;
    if (pod !== undefined) claimedPods.add(pod);
    const podMac = keyMac ?? pod?.mac;
    const ips = new Set([
      ...keyIps,
      ...(podMac === undefined ? [] : ipsOf.get(podMac) ?? []),
    ]);
    const ifName = key?.ifName ?? pod?.ifName ?? "eth0";
    const containerId = key?.containerId ?? `recovered-${v.name}`;
    if (key === undefined) {
      notes.push(
        `veth ${v.name}: container id unknown (no IPAM hold derives this name${
          options.network === undefined ? "; wrong --network?" : ""
        }): recorded as ${containerId}; gc removes it once the veth is gone`,
      );
    }
    if (pod === undefined) {
      notes.push(
        `veth ${v.name}: pod netns not found under ${
          (options.netnsDirs ?? ["/var/run/netns"]).join(", ")
        }; netns left empty`,
      );
    }
    if (podMac === undefined) {
      notes.push(`veth ${v.name}: no pod MAC or address found`);
    }
    for (const ip of ips) used.add(ip);
    const addresses = [...ips].map((ip) => `${ip}/${prefix}`);
    const netns = pod?.netns ?? "";
    state.endpoints[endpointKey(containerId, ifName)] = recoveredEndpoint({
      network: name,
      containerId,
      ifName,
      netns,
      veth: v,
      podMac: podMac ?? "",
      addresses,
      ips: addresses.map((address) => ({ address, gateway })),
      routes: [{ dst: "0.0.0.0/0", gw: gateway }],
      spoofCheck: spoofVeths.has(v.name),
    });
  }
  for (const [ip, mac] of macOf) {
    if (!used.has(ip)) {
      notes.push(
        `address ${ip} (MAC ${mac}) is in use in the kernel but matches no veth: not recorded as an endpoint`,
      );
    }
  }
  return state;
}
