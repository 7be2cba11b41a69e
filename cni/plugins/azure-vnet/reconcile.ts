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
import { stripPrefix } from "@vnet/address";
import { CniError, CODES, flattenCause } from "@vnet/cni";
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
import { endpointKey, HOST_VETH_PREFIX, hostVethName } from "./names.ts";
import {
  attachmentBusy,
  attachmentLockAge,
  attachmentLockVeths,
  forgetAttachmentLock,
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
  reason: string;
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
    if (dry) {
      if (await attachmentBusy({ stateDir, hostVeth: ep.hostVeth })) {
        keptAtWork(a);
      }
      continue;
    }
    const claim = await ifIdle(
      { stateDir, hostVeth: ep.hostVeth },
      () => removeStale({ stateDir, key, ep, a }),
    );
    if (claim === "busy") keptAtWork(a);
    done(a);
  }

  /**
   * Removes a stale endpoint, under its attachment's lock: only when the
   * record is still the one seen and its veth is still gone (an ADD may
   * have attached it again meanwhile).
   */
  async function removeStale(
    spec: {
      stateDir: string;
      key: string;
      ep: EndpointRecord;
      a: ReconcileAction;
    },
  ): Promise<void> {
    const { key, ep, a } = spec;
    const now = await readState(spec.stateDir);
    if (
      !sameRecord(now.endpoints[key], ep) ||
      host.link(ep.hostVeth) !== undefined
    ) {
      a.outcome = "kept";
      a.reason = "attached again meanwhile";
      return;
    }
    const errs = await deleteEndpoint({ kernel, host, ebtables }, {
      hostVeth: ep.hostVeth,
      network: now.networks[ep.network],
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
      return;
    }
    await withState(spec.stateDir, async (s) => {
      if (sameRecord(s.state.endpoints[key], ep)) {
        delete s.state.endpoints[key];
        await s.save();
      }
    });
    a.outcome = `removed (${ep.addresses.join(", ") || "no address"})`;
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
  // A veth goes only under its attachment's lock, once no record names
  // it. Pod rules and neighbours name an address, not an attachment (the
  // reservation of a delegate IPAM's ADD is not in our file): they go only
  // while no ADD or DEL at all is at work, else the next run takes them.
  for (const v of found.veths) {
    const a: ReconcileAction = {
      kind: "veth",
      target: v,
      reason: "on the bridge, no endpoint record",
      outcome: dry ? "would delete" : "deleted",
    };
    actions.push(a);
    if (dry) {
      if (await attachmentBusy({ stateDir, hostVeth: v })) keptAtWork(a);
      continue;
    }
    const claim = await ifIdle({ stateDir, hostVeth: v }, async () => {
      const now = await readState(stateDir);
      if (Object.values(now.endpoints).some((e) => e.hostVeth === v)) {
        a.outcome = "kept";
        a.reason = "recorded meanwhile";
        return;
      }
      if (host.link(v) === undefined) {
        a.outcome = "gone";
        return;
      }
      try {
        host.delLinkSync(v);
      } catch (err) {
        if (host.link(v) !== undefined) {
          fail(a, [wrapKernel(`Cannot delete veth "${v}"`, err)]);
        }
      }
    });
    if (claim === "busy") keptAtWork(a);
    done(a);
  }
  const record = (a: ReconcileAction, errs: unknown[]) => {
    actions.push(a);
    if (errs.length > 0) fail(a, errs);
    done(a);
  };
  // Anti-spoofing rules name a host veth (three of them no MAC): they go
  // under its attachment's lock, as the veth does.
  const bySpoofVeth = new Map<string, EbtablesRule[]>();
  const podLeftovers: Leftovers = { ...found, veths: [], rules: [] };
  for (const r of found.rules) {
    const veth = parseSpoofRule(r.args)?.hostVeth;
    if (veth === undefined) podLeftovers.rules.push(r);
    else bySpoofVeth.set(veth, [...bySpoofVeth.get(veth) ?? [], r]);
  }
  for (const [hostVeth, rules] of bySpoofVeth) {
    const group = { found: { veths: [], rules, neighbours: [] }, dry, record };
    if (dry) {
      const atWork = await attachmentBusy({ stateDir, hostVeth });
      await removeFound({ host, ebtables }, { ...group, atWork });
      continue;
    }
    const claim = await ifIdle({ stateDir, hostVeth }, async () => {
      const now = await readState(stateDir);
      await removeFound({ host, ebtables }, {
        ...group,
        found: unrecorded(group.found, now),
        atWork: false,
      });
    });
    if (claim === "busy") {
      await removeFound({ host, ebtables }, { ...group, atWork: true });
    }
  }
  // Pod rules and neighbours carry the pod's MAC, new with each veth: what a
  // later ADD makes never matches them. One at work now keeps them all; one
  // that recorded since the look keeps its own (the read after the check).
  const atWork = await anyAttachmentBusy(stateDir);
  const deleted = await removeFound({ host, ebtables }, {
    found: dry
      ? podLeftovers
      : unrecorded(podLeftovers, await readState(stateDir)),
    dry,
    atWork,
    record,
  });

  // 3. Reservations without a record, in both looks; one whose address a
  //    neighbour still uses (an ADD past its neighbour) is kept.
  const seen = new Set(holds.map((h) => `${h.ip} ${h.containerId}`));
  const orphans = orphanHolds(last, host).filter((h) =>
    seen.has(`${h.ip} ${h.containerId}`)
  );
  // A dry run has not removed the leftover neighbours: they keep nothing.
  // Neighbours left (an ADD at work, another MAC now) keep theirs.
  const gone = dry ? new Set(found.neighbours.map((n) => n.ip)) : deleted;
  const keptKeys = new Set(
    orphans.filter((h) => h.inKernel && !gone.has(h.ip)).map((h) =>
      endpointKey(h.containerId, h.ifName)
    ),
  );
  const networks = Object.keys(last.state.networks);
  for (const h of orphans) {
    const inKernel = keptKeys.has(endpointKey(h.containerId, h.ifName));
    const a: ReconcileAction = {
      kind: "ipam",
      target: `${h.ip} ${h.containerId}/${h.ifName}`,
      reason: inKernel
        ? "no endpoint record, but a neighbour on the bridge uses it"
        : "no endpoint record",
      outcome: inKernel ? "kept" : dry ? "would release" : "released",
    };
    actions.push(a);
    if (inKernel) continue;
    const release = async () => {
      // Under the lock: still held for it, and still no record.
      const now = await snapshot(stateDir);
      if (!orphanHolds(now, host).some((o) => sameHold(o, h))) {
        a.outcome = "kept";
        a.reason = "recorded or released meanwhile";
        return;
      }
      try {
        await ipam.release(h, { network: h.network });
      } catch (err) {
        fail(a, [err]);
      }
    };
    // A reservation without its network (an older one): any network's.
    const names = h.network === undefined ? networks : [h.network];
    const veths = await Promise.all(names.map((n) => hostVethName(n, h)));
    if (dry) {
      if (await someBusy(stateDir, veths)) keptAtWork(a);
      continue;
    }
    if (await ifIdleAll(stateDir, veths, release) === "busy") keptAtWork(a);
    done(a);
  }
  if (!dry) await forgetGoneLocks(stateDir, host);
  return { actions, failed };
}

/** The leftover rules and neighbours that no record of `state` names. */
function unrecorded(found: Leftovers, state: AzureVnetState): Leftovers {
  const eps = Object.values(state.endpoints);
  const ips = new Set(
    eps.flatMap((e) => e.addresses.map((a) => stripPrefix(a))),
  );
  const veths = new Set(eps.map((e) => e.hostVeth));
  return {
    veths: [],
    rules: found.rules.filter((r) => {
      const spoof = parseSpoofRule(r.args);
      if (spoof !== undefined) return !veths.has(spoof.hostVeth);
      const pod = parsePodRule(r.args);
      return pod === undefined || !ips.has(pod.ip);
    }),
    neighbours: found.neighbours.filter((n) => !ips.has(n.ip)),
  };
}

/**
 * How old a lock file of a gone attachment must be to be removed. An ADD
 * creates its lock file before its veth: a fresh one may be an ADD's
 * between its open and its lock, which must not lose the file it locks.
 */
export const LOCK_FILE_STALE_MS = 10 * 60_000;

/** Reports `a` as left to the ADD or DEL of it at work. */
function keptAtWork(a: ReconcileAction): void {
  a.outcome = "kept";
  a.reason = "an ADD or DEL of it is at work";
}

/** The same reservation (address and attachment). */
function sameHold(a: OrphanHold, b: OrphanHold): boolean {
  return a.ip === b.ip && a.containerId === b.containerId &&
    a.ifName === b.ifName;
}

/**
 * Runs `fn` holding the attachment's lock, when no call holds it: "busy"
 * when one does. What `fn` throws is thrown.
 */
async function ifIdle(
  spec: { stateDir: string; hostVeth: string },
  fn: () => Promise<void>,
): Promise<"done" | "busy"> {
  let ran = false;
  try {
    await withAttachmentLock({ ...spec, lock: { lockTimeoutMs: 1 } }, () => {
      ran = true;
      return fn();
    });
  } catch (err) {
    if (!ran && err instanceof CniError && err.code === CODES.tryAgainLater) {
      return "busy";
    }
    throw err;
  }
  return "done";
}

/**
 * {@link ifIdle} over each of `veths` at once (tryLocks: nesting them
 * cannot deadlock); runs `fn` with no lock when there are none.
 */
async function ifIdleAll(
  stateDir: string,
  veths: readonly string[],
  fn: () => Promise<void>,
): Promise<"done" | "busy"> {
  const [first, ...rest] = veths;
  if (first === undefined) {
    await fn();
    return "done";
  }
  let inner: "done" | "busy" = "done";
  const outer = await ifIdle({ stateDir, hostVeth: first }, async () => {
    inner = await ifIdleAll(stateDir, rest, fn);
  });
  return outer === "busy" ? "busy" : inner;
}

/** Whether an ADD or DEL of any of `veths`' attachments is at work. */
async function someBusy(
  stateDir: string,
  veths: readonly string[],
): Promise<boolean> {
  for (const hostVeth of veths) {
    if (await attachmentBusy({ stateDir, hostVeth })) return true;
  }
  return false;
}

/** Whether any ADD or DEL holds its attachment's lock now. */
async function anyAttachmentBusy(stateDir: string): Promise<boolean> {
  return await someBusy(stateDir, await attachmentLocks(stateDir));
}

/** The host veths of the attachments' lock files (a read failure: none). */
async function attachmentLocks(stateDir: string): Promise<string[]> {
  return await attachmentLockVeths(stateDir).catch((err) => {
    log.warn("Cannot read the attachments' locks in {dir}: {err}", {
      dir: stateDir,
      err: flattenCause(err),
    });
    return [];
  });
}

/**
 * Removes the lock files of attachments whose host veth is gone, each
 * under its lock (one held by a call at work is left).
 */
async function forgetGoneLocks(
  stateDir: string,
  host: KernelNs,
): Promise<void> {
  for (const hostVeth of await attachmentLocks(stateDir)) {
    const spec = { stateDir, hostVeth };
    const gone = () => {
      try {
        return host.link(hostVeth) === undefined;
      } catch {
        return false;
      }
    };
    const age = await attachmentLockAge(spec);
    if (!gone() || age === undefined || age <= LOCK_FILE_STALE_MS) continue;
    // Looked at again under the lock: an ADD may have made it since.
    await ifIdle(
      spec,
      () => gone() ? forgetAttachmentLock(spec) : Promise.resolve(),
    )
      .catch((err) => {
        log.warn("Cannot remove the lock file of {veth}: {err}", {
          veth: hostVeth,
          err: flattenCause(err),
        });
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
    /** An ADD or DEL is at work: the rules and neighbours are left. */
    atWork: boolean;
    record: (a: ReconcileAction, errs: unknown[]) => void;
  },
): Promise<Set<string>> {
  const { host, ebtables } = ctx;
  const { found, dry, atWork } = spec;
  // Left to the next run: an ADD at work may have made them.
  const outcome = atWork ? "kept" : dry ? "would delete" : "deleted";
  const act = !dry && !atWork;
  const leftReason = (reason: string) =>
    atWork
      ? `${reason}; an ADD or DEL is at work, the next run looks again`
      : reason;
  if (found.rules.length > 0) {
    let errs: unknown[] = [];
    if (act) {
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
        reason: leftReason(
          parseSpoofRule(r.args) === undefined
            ? "a pod rule for an address of no endpoint record"
            : "an anti-spoofing rule of a host veth of no endpoint record",
        ),
        outcome,
      }, errs);
    }
  }
  const deleted = new Set<string>();
  for (const n of found.neighbours) {
    const errs: unknown[] = [];
    const a: ReconcileAction = {
      kind: "neighbour",
      target: `${n.ip} on ${n.bridge}`,
      reason: leftReason(
        "a permanent neighbour for an address of no endpoint record",
      ),
      outcome,
    };
    if (act) {
      // One that names another MAC now is a new pod's (its ADD got the
      // address since): left alone.
      const now = host.neighMac(n.bridge, n.ip);
      if (now === undefined) {
        a.outcome = "gone";
        deleted.add(n.ip);
      } else if (
        n.mac !== undefined && canonicalMac(now) !== canonicalMac(n.mac)
      ) {
        a.outcome = "kept";
        a.reason = `it names ${now} now, a new pod's`;
      } else {
        try {
          host.neighDel(n.bridge, n.ip);
          deleted.add(n.ip);
        } catch (err) {
          errs.push(wrapKernel(`Cannot delete neighbour "${n.ip}"`, err));
        }
      }
    }
    spec.record(a, errs);
  }
  return deleted;
}

function sameRecord(a: EndpointRecord | undefined, b: EndpointRecord): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}
