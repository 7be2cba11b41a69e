/**
 * `state gc`: reconciles the state files with what really exists.
 *
 * - An endpoint whose pod netns path is gone, or whose host veth is gone, is
 *   removed as DEL removes it: the plugin's own `deleteEndpoint` (host veth,
 *   bridge neighbours, per-pod ebtables rules), then the IPAM release by
 *   container id and ifname through the `@vnet/ipam` engine's DEL, then the
 *   record.
 * - An IPAM reservation with no endpoint record is released, unless its
 *   address is still visible in the kernel (a neighbour on a recorded
 *   bridge).
 * - A host veth `azv*` enslaved to a recorded bridge with no endpoint record
 *   is deleted.
 *
 * Orphans (the last two) are confirmed twice, `graceMs` apart, so an ADD in
 * flight (reserved, veth made, record not yet written) is left alone. The
 * state locks are held for each read-modify-write only.
 *
 * @module
 */
import { flattenCause } from "@vnet/cni";
import {
  IPAM_STATE_FILE,
  IpamEngine,
  type IpamState,
  readIpamState,
} from "@vnet/ipam";
import {
  type AzureVnetState,
  deleteEndpoint,
  Ebtables,
  endpointKey,
  type EndpointRecord,
  findLeftovers,
  HOST_VETH_PREFIX,
  type Kernel,
  type KernelNs,
  netlinkKernel,
  readState,
  withState,
} from "@vnet/azure-vnet";

/** Options of {@link gcState}. */
export interface GcOptions {
  /** Report only; change nothing. */
  dryRun?: boolean;
  /** Delay between the two looks at an orphan, in ms (default 2000). */
  graceMs?: number;
  /** The kernel port (default netlink, in the current netns). */
  kernel?: Kernel;
  /** The ebtables driver. */
  ebtables?: Ebtables;
  /** Whether a netns path exists (default: `Deno.stat`). */
  netnsExists?: (path: string) => Promise<boolean>;
  /** Sleep (tests). */
  sleep?: (ms: number) => Promise<void>;
}

/** One thing gc found. */
export interface GcAction {
  /** `endpoint` (stale record), `ipam` (orphan reservation), `veth`. */
  readonly kind: "endpoint" | "ipam" | "veth";
  /** The endpoint key, `ip containerId/ifName`, or the veth name. */
  readonly target: string;
  /** Why it is stale. */
  readonly reason: string;
  /** `removed`, `released`, `deleted`, `would remove`, `kept` or `failed`. */
  outcome: string;
  /** What failed, when it did. */
  error?: string;
}

/** What {@link gcState} did. */
export interface GcReport {
  /** Every finding, in order. */
  readonly actions: GcAction[];
  /** True when some step failed. */
  readonly failed: boolean;
}

async function statExists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Snapshot {
  readonly state: AzureVnetState;
  readonly ipam: IpamState | undefined;
}

async function snapshot(stateDir: string): Promise<Snapshot> {
  return {
    state: await readState(stateDir),
    ipam: await readIpamState(`${stateDir}/${IPAM_STATE_FILE}`),
  };
}

/** Reservations (`ip`, key) with no endpoint record and not seen in the kernel. */
function orphanHolds(
  snap: Snapshot,
  host: KernelNs,
): {
  ip: string;
  containerId: string;
  ifName: string;
  network: string | undefined;
  inKernel: boolean;
}[] {
  const keys = new Set(Object.keys(snap.state.endpoints));
  const bridges = Object.values(snap.state.networks).flatMap((n) =>
    n.mode === "bridge" ? [n.bridge] : []
  );
  // Transparent mode: a pod address is in use while a host veth routes it.
  const routed = new Set(
    Object.values(snap.state.networks).some((n) => n.mode === "transparent")
      ? host.links().filter((l) => l.name.startsWith(HOST_VETH_PREFIX))
        .flatMap((l) => host.routes(l.name).map((r) => r.dst))
      : [],
  );
  const out = [];
  for (const pool of Object.values(snap.ipam?.pools ?? {})) {
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (rec.containerId === undefined) continue;
      const ifName = rec.ifName ?? "";
      if (keys.has(endpointKey(rec.containerId, ifName))) continue;
      const inKernel = routed.has(`${ip}/32`) || routed.has(`${ip}/128`) ||
        bridges.some((b) =>
          host.link(b) !== undefined && host.neighMac(b, ip) !== undefined
        );
      out.push({
        ip,
        containerId: rec.containerId,
        ifName,
        network: rec.network,
        inKernel,
      });
    }
  }
  return out;
}

/**
 * Host veths on a recorded bridge with no endpoint record (the plugin's own
 * leftover search, which CNI GC uses too).
 */
function orphanVeths(snap: Snapshot, host: KernelNs): string[] {
  return findLeftovers(host, { state: snap.state }).veths;
}

/**
 * Reconciles `azure-vnet.json` and `azure-vnet-ipam.json` with the kernel.
 *
 * Requires CAP_NET_ADMIN in the node's netns, the `ebtables` binary and
 * write access to the state directory.
 *
 * @param stateDir The state directory (`/var/run`).
 * @param options Dry run, grace, injectable kernel, ebtables, clock.
 * @returns What was found and done.
 * @throws {CniError} 102 when a state file is corrupt (run `repair`), 11 on
 * a lock timeout.
 *
 * @tags allow-ffi, allow-run, allow-read, allow-write
 *
 * @example Usage
 * ```ts ignore
 * const report = await gcState("/var/run", { dryRun: true });
 * ```
 */
export async function gcState(
  stateDir: string,
  options: GcOptions = {},
): Promise<GcReport> {
  const kernel = options.kernel ?? netlinkKernel();
  const ebtables = options.ebtables ?? new Ebtables();
  const exists = options.netnsExists ?? statExists;
  const sleep = options.sleep ?? defaultSleep;
  const dry = options.dryRun === true;
  const ipam = new IpamEngine({ stateDir });
  const actions: GcAction[] = [];
  let failed = false;
  function fail(a: GcAction, errs: unknown[]): void {
    failed = true;
    a.outcome = "failed";
    a.error = errs.map((e) => flattenCause(e)).join("; ");
  }

  using host = kernel.host();
  const first = await snapshot(stateDir);

  // 1. Stale endpoints: removed as DEL removes them.
  for (const [key, ep] of Object.entries(first.state.endpoints)) {
    const reasons: string[] = [];
    if (ep.netns !== "" && !(await exists(ep.netns))) {
      reasons.push(`netns ${ep.netns} gone`);
    }
    if (host.link(ep.hostVeth) === undefined) {
      reasons.push(`veth ${ep.hostVeth} gone`);
    }
    if (reasons.length === 0) continue;
    const a: GcAction = {
      kind: "endpoint",
      target: key,
      reason: reasons.join(", "),
      outcome: dry ? "would remove" : "removed",
    };
    actions.push(a);
    if (dry) continue;
    const errs = await deleteEndpoint({ kernel, host, ebtables }, {
      hostVeth: ep.hostVeth,
      network: first.state.networks[ep.network],
      pod: ep,
    });
    try {
      await ipam.release(ep, { network: ep.network });
    } catch (err) {
      errs.push(err);
    }
    if (errs.length > 0) {
      fail(a, errs);
      continue;
    }
    await withState(stateDir, async (s) => {
      if (sameRecord(s.state.endpoints[key], ep)) {
        delete s.state.endpoints[key];
        await s.save();
      }
    });
    a.outcome = `removed (${ep.addresses.join(", ") || "no address"})`;
  }

  // 2. Orphans, confirmed after the grace delay.
  const after = dry ? first : await snapshot(stateDir);
  let holds = orphanHolds(after, host);
  let veths = orphanVeths(after, host);
  const graceMs = options.graceMs ?? 2000;
  if (!dry && graceMs > 0 && (holds.length > 0 || veths.length > 0)) {
    await sleep(graceMs);
    const again = await snapshot(stateDir);
    const h2 = new Set(
      orphanHolds(again, host).map((h) => `${h.ip} ${h.containerId}`),
    );
    holds = holds.filter((h) => h2.has(`${h.ip} ${h.containerId}`));
    const v2 = new Set(orphanVeths(again, host));
    veths = veths.filter((v) => v2.has(v));
  }
  for (const v of veths) {
    const a: GcAction = {
      kind: "veth",
      target: v,
      reason: "on the bridge, no endpoint record",
      outcome: dry ? "would delete" : "deleted",
    };
    actions.push(a);
    if (dry) continue;
    const errs = await deleteEndpoint({ kernel, host, ebtables }, {
      hostVeth: v,
      network: undefined,
      pod: undefined,
    });
    if (errs.length > 0) fail(a, errs);
  }
  const keptKeys = new Set(
    holds.filter((h) => h.inKernel).map((h) =>
      endpointKey(h.containerId, h.ifName)
    ),
  );
  for (const h of holds) {
    const inKernel = keptKeys.has(endpointKey(h.containerId, h.ifName));
    const a: GcAction = {
      kind: "ipam",
      target: `${h.ip} ${h.containerId}/${h.ifName}`,
      reason: inKernel
        ? "no endpoint record, but a neighbour on the bridge uses it"
        : "no endpoint record",
      outcome: inKernel ? "kept" : dry ? "would release" : "released",
    };
    actions.push(a);
    if (dry || inKernel) continue;
    try {
      await ipam.release(h, { network: h.network });
    } catch (err) {
      fail(a, [err]);
    }
  }
  return { actions, failed };
}

function sameRecord(a: EndpointRecord | undefined, b: EndpointRecord): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}
