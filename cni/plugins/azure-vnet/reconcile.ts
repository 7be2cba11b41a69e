/**
 * Reconciling the state files with the kernel: the state tool's `gc` and
 * the agent's start (#14).
 *
 * - An endpoint whose host veth is gone (its pod netns path is no evidence:
 *   a netns may outlive its path, or be out of sight in another mount
 *   namespace) is removed as DEL removes it: the plugin's own
 *   `deleteEndpoint` (host veth, bridge neighbours, per-pod ebtables rules),
 *   then, only when all of that went, the IPAM release by container id and
 *   ifname through the `@vnet/ipam` engine, then the record.
 * - Kernel leftovers of interrupted ADDs that no record accounts for
 *   ({@link findLeftovers}): host veths `azv*` enslaved to a recorded bridge,
 *   per-pod ebtables rules and permanent bridge neighbours of an address of
 *   no record, are removed.
 * - An IPAM reservation with no endpoint record is released, unless its
 *   address is still visible in the kernel after that (a neighbour on a
 *   recorded bridge).
 * - A bridge network's master loses the hairpin flag that earlier versions
 *   and the Go azure-vnet set (it sends the fabric's broadcasts back).
 *
 * Nothing a recorded endpoint uses is an orphan: its veth, its addresses'
 * neighbours and rules, and its reservation are kept. In a netns without a
 * recorded network's bridge (not the node's), it refuses and changes
 * nothing. Orphans are confirmed
 * twice, `graceMs` apart, and what an ADD or DEL at work holds is left
 * alone however long it takes: a veth whose attachment's lock is held
 * (`attachment_lock.ts`), and the reservation, rules and neighbour of an
 * address reserved for such an attachment. Lock files of attachments that
 * are gone are removed. The state locks are held for each
 * read-modify-write only.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { flattenCause } from "@vnet/cni";
import {
  IPAM_STATE_FILE,
  IpamEngine,
  type IpamState,
  readIpamState,
} from "@vnet/ipam";
import { Ebtables } from "./ebtables.ts";
import {
  canonicalMac,
  type EbtablesRule,
  parsePodRule,
  parseSpoofRule,
} from "./ebtables_rules.ts";
import { deleteEndpoint } from "./mode.ts";
import type { Kernel, KernelNs } from "./kernel.ts";
import {
  confirmLeftovers,
  findLeftovers,
  LEFTOVER_GRACE_MS,
  type Leftovers,
} from "./leftovers.ts";
import { endpointKey, HOST_VETH_PREFIX } from "./names.ts";
import {
  ATTACHMENT_LOCK_DIR,
  attachmentBusy,
  forgetAttachmentLock,
  reservationBusy,
  withAttachmentLock,
} from "./attachment_lock.ts";
import { netlinkKernel } from "./netlink_kernel.ts";
import { wrapKernel } from "./errors.ts";
import type { AzureVnetState, EndpointRecord } from "./state.ts";
import { withState } from "./state.ts";
import { readState } from "./teardown.ts";

const log = getLogger(["azure-vnet", "reconcile"]);

/** Options of {@link reconcileState}. */
export interface ReconcileOptions {
  /** Report only; change nothing. */
  dryRun?: boolean;
  /** Delay between the two looks at an orphan, in ms (default 2000). */
  graceMs?: number;
  /** The kernel port (default netlink, in the current netns). */
  kernel?: Kernel;
  /** The ebtables driver. */
  ebtables?: Ebtables;
  /** Sleep (tests). */
  sleep?: (ms: number) => Promise<void>;
}

/** One thing the reconcile found. */
export interface ReconcileAction {
  /**
   * `endpoint` (stale record), `ipam` (orphan reservation), `veth`, `rule`
   * (per-pod ebtables rule) or `neighbour` (kernel leftovers).
   */
  readonly kind: "endpoint" | "ipam" | "veth" | "rule" | "neighbour";
  /** The endpoint key, `ip containerId/ifName`, veth name, rule or IP. */
  readonly target: string;
  /** Why it is stale. */
  readonly reason: string;
  /** `removed`, `released`, `deleted`, `would remove`, `kept` or `failed`. */
  outcome: string;
  /** What failed, when it did. */
  error?: string;
}

/** What {@link reconcileState} did. */
export interface ReconcileReport {
  /** Every finding, in order. */
  readonly actions: ReconcileAction[];
  /** True when some step failed. */
  readonly failed: boolean;
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

interface OrphanHold {
  ip: string;
  containerId: string;
  ifName: string;
  network: string | undefined;
  inKernel: boolean;
}

/** Reservations (`ip`, key) with no endpoint record, and whether seen. */
function orphanHolds(snap: Snapshot, host: KernelNs): OrphanHold[] {
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

function ruleText(r: EbtablesRule): string {
  return `${r.chain} ${r.args.join(" ")}`;
}

/** The leftovers of `snap` (the plugin's own search, which CNI GC uses). */
async function leftoversOf(
  snap: Snapshot,
  ctx: { host: KernelNs; ebtables: Ebtables },
): Promise<Leftovers> {
  const any = Object.keys(snap.state.networks).length > 0;
  return findLeftovers(ctx.host, {
    state: snap.state,
    ...(any ? { prerouting: await ctx.ebtables.list("PREROUTING") } : {}),
  });
}

/**
 * Reconciles `azure-vnet.json` and `azure-vnet-ipam.json` with the kernel,
 * and logs each change it makes.
 *
 * Requires CAP_NET_ADMIN in the node's netns, the `ebtables` binary and
 * write access to the state directory.
 *
 * @param stateDir The state directory (`/var/run`).
 * @param options Dry run, grace, injectable kernel, ebtables, clock.
 * @returns What was found and done.
 * @throws {CniError} 102 when a state file is corrupt (run `repair`), 11 on
 * a lock timeout.
 * @throws {Deno.errors.NotFound} When a recorded bridge-mode network's
 * bridge does not exist in the current netns (nothing is changed).
 *
 * @tags allow-ffi, allow-run, allow-read, allow-write
 *
 * @example Usage
 * ```ts ignore
 * const report = await reconcileState("/var/run", { dryRun: true });
 * ```
 */
export async function reconcileState(
  stateDir: string,
  options: ReconcileOptions = {},
): Promise<ReconcileReport> {
  const kernel = options.kernel ?? netlinkKernel();
  const ebtables = options.ebtables ?? new Ebtables();
  const sleep = options.sleep ?? defaultSleep;
  const dry = options.dryRun === true;
  const ipam = new IpamEngine({ stateDir });
  const actions: ReconcileAction[] = [];
  let failed = false;
  function fail(a: ReconcileAction, errs: unknown[]): void {
    failed = true;
    a.outcome = "failed";
    a.error = errs.map((e) => flattenCause(e)).join("; ");
  }
  function done(a: ReconcileAction): void {
    if (dry) return;
    log.info("Reconcile: {kind} {target} ({reason}): {outcome}", { ...a });
  }

  using host = kernel.host();
  const first = await snapshot(stateDir);
  refuseElsewhere(host, { stateDir, state: first.state });
  if (!dry) clearMasterHairpin(host, first.state);

  // 1. Stale endpoints: removed as DEL removes them. The host veth is the
  //    kernel's answer: the pair dies with the pod's netns, which may
  //    outlive its path, or have a path this process cannot see (another
  //    mount namespace), so a path is no evidence either way.
  for (const [key, ep] of Object.entries(first.state.endpoints)) {
    if (host.link(ep.hostVeth) !== undefined) continue;
    const a: ReconcileAction = {
      kind: "endpoint",
      target: key,
      reason: `veth ${ep.hostVeth} gone`,
      outcome: dry ? "would remove" : "removed",
    };
    actions.push(a);
    if (dry) continue;
    const errs = await deleteEndpoint({ kernel, host, ebtables }, {
      hostVeth: ep.hostVeth,
      network: first.state.networks[ep.network],
      pod: ep,
    });
    // Its address goes back only once nothing of it is left in the kernel;
    // the record stays too, so the next run tries again.
    if (errs.length === 0) {
      try {
        await ipam.release(ep, { network: ep.network });
      } catch (err) {
        errs.push(err);
      }
    }
    if (errs.length > 0) {
      fail(a, errs);
      done(a);
      continue;
    }
    await withState(stateDir, async (s) => {
      if (sameRecord(s.state.endpoints[key], ep)) {
        delete s.state.endpoints[key];
        await s.save();
      }
    });
    a.outcome = `removed (${ep.addresses.join(", ") || "no address"})`;
    done(a);
  }

  // 2. Kernel leftovers, confirmed after the grace delay.
  const after = dry ? first : await snapshot(stateDir);
  let found = await leftoversOf(after, { host, ebtables });
  const holds = orphanHolds(after, host);
  const some = found.veths.length + found.rules.length +
      found.neighbours.length + holds.length > 0;
  const graceMs = options.graceMs ?? LEFTOVER_GRACE_MS;
  let last = after;
  if (!dry && graceMs > 0 && some) {
    await sleep(graceMs);
    last = await snapshot(stateDir);
    found = confirmLeftovers(
      found,
      await leftoversOf(last, { host, ebtables }),
    );
  }
  const networks = Object.keys(last.state.networks);
  const atWork = await inFlight(stateDir, {
    found,
    holds: orphanHolds(last, host),
    networks,
  });
  found = spare(found, atWork);
  await removeFound({ host, ebtables }, {
    found,
    dry,
    record(a, errs) {
      actions.push(a);
      if (errs.length > 0) fail(a, errs);
      done(a);
    },
  });

  // 3. Reservations without a record, in both looks; one whose address a
  //    neighbour still uses (an ADD past its neighbour) is kept.
  const seen = new Set(holds.map((h) => `${h.ip} ${h.containerId}`));
  const orphans = orphanHolds(last, host).filter((h) =>
    seen.has(`${h.ip} ${h.containerId}`)
  );
  // A dry run has not removed the leftover neighbours: they keep nothing.
  const gone = new Set(found.neighbours.map((n) => n.ip));
  const keptKeys = new Set(
    orphans.filter((h) => h.inKernel && !gone.has(h.ip)).map((h) =>
      endpointKey(h.containerId, h.ifName)
    ),
  );
  for (const h of orphans) {
    const inKernel = keptKeys.has(endpointKey(h.containerId, h.ifName));
    const busy = atWork.ips.has(h.ip);
    const a: ReconcileAction = {
      kind: "ipam",
      target: `${h.ip} ${h.containerId}/${h.ifName}`,
      reason: busy
        ? "no endpoint record yet: an ADD or DEL of it is at work"
        : inKernel
        ? "no endpoint record, but a neighbour on the bridge uses it"
        : "no endpoint record",
      outcome: busy || inKernel ? "kept" : dry ? "would release" : "released",
    };
    actions.push(a);
    if (dry || inKernel || busy) continue;
    try {
      await ipam.release(h, { network: h.network });
    } catch (err) {
      fail(a, [err]);
    }
    done(a);
  }
  if (!dry) await forgetGoneLocks(stateDir, host);
  return { actions, failed };
}

/** What calls at work hold: veths by name, addresses reserved for them. */
interface AtWork {
  readonly veths: ReadonlySet<string>;
  readonly ips: ReadonlySet<string>;
}

/**
 * The leftover veths whose attachment's lock is held, and the addresses
 * reserved (without a record) for an attachment whose lock is held.
 */
async function inFlight(
  stateDir: string,
  spec: { found: Leftovers; holds: OrphanHold[]; networks: string[] },
): Promise<AtWork> {
  const veths = new Set<string>();
  const spoofVeths = spec.found.rules.flatMap((r) =>
    parseSpoofRule(r.args)?.hostVeth ?? []
  );
  for (const hostVeth of new Set([...spec.found.veths, ...spoofVeths])) {
    if (await attachmentBusy({ stateDir, hostVeth })) veths.add(hostVeth);
  }
  const ips = new Set<string>();
  for (const h of spec.holds) {
    if (
      await reservationBusy({ stateDir, ...h, networks: spec.networks })
    ) ips.add(h.ip);
  }
  if (veths.size + ips.size > 0) {
    log.info("Reconcile: left alone, at work: {what}", {
      what: [...veths, ...ips].join(", "),
    });
  }
  return { veths, ips };
}

/** The leftovers but what calls at work hold. */
function spare(found: Leftovers, atWork: AtWork): Leftovers {
  const free = (ip: string | undefined) =>
    ip === undefined || !atWork.ips.has(ip);
  return {
    veths: found.veths.filter((v) => !atWork.veths.has(v)),
    rules: found.rules.filter((r) => {
      const spoof = parseSpoofRule(r.args);
      if (spoof !== undefined) {
        return !atWork.veths.has(spoof.hostVeth) && free(spoof.ip);
      }
      return free(parsePodRule(r.args)?.ip);
    }),
    neighbours: found.neighbours.filter((n) => free(n.ip)),
  };
}

/**
 * Removes the lock files of attachments whose host veth is gone, each
 * under its lock (one held by a call at work is left).
 */
async function forgetGoneLocks(
  stateDir: string,
  host: KernelNs,
): Promise<void> {
  const dir = `${stateDir}/${ATTACHMENT_LOCK_DIR}`;
  const gone: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const hostVeth = e.name.endsWith(".lock") ? e.name.slice(0, -5) : "";
      if (e.isFile && hostVeth !== "" && host.link(hostVeth) === undefined) {
        gone.push(hostVeth);
      }
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    log.warn("Cannot read {dir}: {err}", { dir, err: flattenCause(err) });
    return;
  }
  for (const hostVeth of gone) {
    const spec = { stateDir, hostVeth };
    await withAttachmentLock({ ...spec, lock: { lockTimeoutMs: 1 } }, () =>
      // Looked at again under the lock: an ADD may have made it since.
      host.link(hostVeth) === undefined
        ? forgetAttachmentLock(spec)
        : Promise.resolve()).catch(() => {
        // At work: its call removes it, or the next reconcile does.
      });
  }
}

/**
 * Turns hairpin off on each bridge network's master that its bridge holds:
 * earlier versions, and the Go azure-vnet, set it, and it sends the
 * fabric's broadcasts back to the fabric. The flag is not read (the port
 * has no reader of it), so it is cleared whatever it was, which changes
 * nothing when it is off; hence no action is reported. A failure is
 * logged: it leaves the node as it was.
 */
function clearMasterHairpin(host: KernelNs, state: AzureVnetState): void {
  for (const net of Object.values(state.networks)) {
    if (net.mode !== "bridge") continue;
    const bridge = host.link(net.bridge);
    const master = host.link(net.master);
    if (bridge === undefined || master?.masterIndex !== bridge.index) continue;
    try {
      host.setHairpin(net.master, { on: false });
    } catch (err) {
      log.warn("Cannot turn hairpin off on master {master}: {err}", {
        master: net.master,
        err: flattenCause(err),
      });
    }
  }
}

/**
 * Refuses a netns that lacks a recorded network's master NIC with its MAC:
 * run anywhere but the node's netns (a container without the host's
 * network), the reconcile would see every endpoint's veth as gone and
 * remove them all. A node that lost its bridge (a reboot) still has its
 * NIC: there the pods are gone, and so go their records.
 */
function refuseElsewhere(
  host: KernelNs,
  spec: { stateDir: string; state: AzureVnetState },
): void {
  for (const net of Object.values(spec.state.networks)) {
    // The node's NIC keeps its MAC, bridged or not, across reboots; another
    // namespace (a pod's, a debug container's) may have an `eth0`, not it.
    const mac = host.link(net.master)?.mac;
    if (
      mac !== undefined && canonicalMac(mac) === canonicalMac(net.masterMac)
    ) {
      continue;
    }
    throw new Deno.errors.NotFound(
      `Cannot reconcile "${spec.stateDir}": master "${net.master}" (MAC ${net.masterMac}) of network "${net.name}" is not in this network namespace, where every endpoint's veth would look gone; run it in the node's network namespace`,
    );
  }
}

/** Removes (or, dry, reports) each leftover, one action each. */
async function removeFound(
  ctx: { host: KernelNs; ebtables: Ebtables },
  spec: {
    found: Leftovers;
    dry: boolean;
    record: (a: ReconcileAction, errs: unknown[]) => void;
  },
): Promise<void> {
  const { host, ebtables } = ctx;
  const { found, dry } = spec;
  const reason = "on the bridge, no endpoint record";
  for (const v of found.veths) {
    const a: ReconcileAction = {
      kind: "veth",
      target: v,
      reason,
      outcome: dry ? "would delete" : "deleted",
    };
    const errs: unknown[] = [];
    if (!dry) {
      try {
        host.delLinkSync(v);
      } catch (err) {
        errs.push(wrapKernel(`Cannot delete veth "${v}"`, err));
      }
    }
    spec.record(a, errs);
  }
  if (found.rules.length > 0) {
    let errs: unknown[] = [];
    if (!dry) {
      try {
        await ebtables.removeAll(found.rules);
      } catch (err) {
        errs = [err];
      }
    }
    for (const r of found.rules) {
      spec.record({
        kind: "rule",
        target: ruleText(r),
        reason: parseSpoofRule(r.args) === undefined
          ? "a pod rule for an address of no endpoint record"
          : "an anti-spoofing rule of a host veth of no endpoint record",
        outcome: dry ? "would delete" : "deleted",
      }, errs);
    }
  }
  for (const n of found.neighbours) {
    const errs: unknown[] = [];
    if (!dry) {
      try {
        host.neighDel(n.bridge, n.ip);
      } catch (err) {
        errs.push(wrapKernel(`Cannot delete neighbour "${n.ip}"`, err));
      }
    }
    spec.record({
      kind: "neighbour",
      target: `${n.ip} on ${n.bridge}`,
      reason: "a permanent neighbour for an address of no endpoint record",
      outcome: dry ? "would delete" : "deleted",
    }, errs);
  }
}

function sameRecord(a: EndpointRecord | undefined, b: EndpointRecord): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}
