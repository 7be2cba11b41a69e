/**
 * Adoption of a node the Go azure-vnet set up (#17): on the first call
 * that finds a state file in the Go format, both state files are converted
 * (`acn_state.ts`) under both state locks, the Go files are kept as
 * `<file>.acn-backup`, and the verbs go on with our state. Also the
 * helpers the verbs use to treat an adopted endpoint as its own: its
 * reservation, released and checked in our IPAM file whatever the IPAM
 * route, and the attachments GC must keep.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  type CmdArgs,
  CniError,
  CODES,
  gcAttachments,
  withDeadline,
  withStateLock,
  writeFileAtomic,
} from "@vnet/cni";
import { kernelMac, stripPrefix } from "@vnet/address";
import {
  type AttachmentKey,
  IPAM_STATE_FILE,
  IpamEngine,
  requireHeld,
} from "@vnet/ipam";
import {
  ACN_BACKUP_SUFFIX,
  type AcnLinkFact,
  type AdoptionReport,
  convertAcnState,
  findAttachment,
  type FoundAttachment,
  isAcnIpamDocument,
  isAcnNetworkDocument,
  legacyEndpointId,
  looksLikeAcnText,
} from "./acn_state.ts";
import type { Kernel, KernelNs } from "./kernel.ts";
import { podEnd, podFromPrevResult } from "./pod_end.ts";
import { type ProcessInfo, processInfo } from "@vnet/netlink";
import type { AzureVnetState, EndpointRecord } from "./state.ts";
import { statePath } from "./state.ts";

const log = getLogger(["azure-vnet", "adopt"]);

/** The deadline of each file operation of adoption, in ms. */
const OP_TIMEOUT_MS = 10_000;

/** Options of {@link adoptAcnState}. */
export interface AdoptOptions {
  /** Report what would be converted; write nothing. */
  dryRun?: boolean;
  /** The host's links (host veth MACs and MTUs); default none. */
  links?: () => readonly AcnLinkFact[];
  /** Bound of each state-lock wait, in ms. */
  lockTimeoutMs?: number;
  /**
   * How long to wait while a live Go plugin call holds its lock file, in
   * ms (default 5000; v0.91 itself gives up after about 2 s); then code 11.
   */
  goLockWaitMs?: number;
}

/** What {@link adoptAcnState} did. */
export interface AdoptOutcome {
  /** The conversion. */
  readonly report: AdoptionReport;
  /** The copies of the Go files kept (none on a dry run). */
  readonly backups: string[];
  /** True when nothing was written. */
  readonly dryRun: boolean;
}

function ipamPathOf(stateDir: string): string {
  return `${stateDir.replace(/\/+$/, "")}/${IPAM_STATE_FILE}`;
}

/** True when the file at `path` is a regular file opening like a Go one. */
async function sniff(path: string): Promise<boolean> {
  const look = async () => {
    const st = await Deno.stat(path);
    if (!st.isFile) return false;
    using f = await Deno.open(path, { read: true });
    const buf = new Uint8Array(64);
    const n = await f.read(buf);
    return looksLikeAcnText(new TextDecoder().decode(buf.subarray(0, n ?? 0)));
  };
  try {
    return await withDeadline(look(), {
      ms: OP_TIMEOUT_MS,
      what: `read "${path}"`,
    });
  } catch {
    // Missing or unreadable: the verbs' own reads report it.
    return false;
  }
}

/**
 * Tells cheaply (a stat and 64 bytes per file, no lock) whether either
 * state file in `stateDir` was written by the Go plugin.
 *
 * @param stateDir The state directory.
 * @returns True when adoption is due.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { acnStatePresent } from "./adopt.ts";
 * const dir = await Deno.makeTempDir();
 * assert.equal(await acnStatePresent(dir), false);
 * await Deno.writeTextFile(`${dir}/azure-vnet.json`, '{\n\t"Network": {}}');
 * assert.equal(await acnStatePresent(dir), true);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function acnStatePresent(stateDir: string): Promise<boolean> {
  const [a, b] = await Promise.all([
    sniff(statePath(stateDir)),
    sniff(ipamPathOf(stateDir)),
  ]);
  return a || b;
}

/**
 * Keeps `bytes` (a Go state file) at `<path>.acn-backup`, or at
 * `<path>.acn-backup.N` when an older, different copy is there (written
 * atomically).
 */
async function keepBackup(path: string, bytes: Uint8Array): Promise<string> {
  const step = <T>(op: Promise<T>, what: string) =>
    withDeadline(op, { ms: OP_TIMEOUT_MS, what });
  for (let n = 0;; n++) {
    const name = `${path}${ACN_BACKUP_SUFFIX}${n === 0 ? "" : `.${n}`}`;
    let have: Uint8Array | undefined;
    try {
      have = await step(Deno.readFile(name), `read "${name}"`);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    if (have !== undefined) {
      if (
        have.length === bytes.length && have.every((b, i) => b === bytes[i])
      ) {
        return name;
      }
      continue;
    }
    await writeFileAtomic(name, bytes, { opTimeoutMs: OP_TIMEOUT_MS });
    return name;
  }
}

/**
 * How much later than its lock file's mtime a process may seem to have
 * started and still be its writer (the start time is read to about 10 ms,
 * file times to the kernel's tick).
 */
const START_SLACK_MS = 2000;

/** `err` as code 5, unless it is a CNI error already. */
function ioError(msg: string, err: unknown): CniError {
  return err instanceof CniError
    ? err
    : new CniError(CODES.ioFailure, msg, { cause: err });
}

/** A Go plugin's name (`comm`): `azure-vnet` or `azure-vnet-ipam`. */
const GO_PLUGIN_NAME = /^azure-vnet/;

/**
 * Who holds the Go plugin's lock of `path`, when a live Go plugin call
 * does: v0.91 creates `<file>.lock` exclusively, writes its PID and
 * deletes the file when done (our lock file is the same path, flocked,
 * empty and never deleted). The PID counts only while it is a live
 * process named `azure-vnet*` that started before the lock file was
 * written: a dead PID, a zombie, or a PID reused by another program or by
 * a later process holds nothing (v0.91 leaves its lock file behind when
 * it dies). Inside our own lock (`held`), a lock file that is gone was
 * deleted under us by a Go call that just finished: that too is reported,
 * so that the caller takes the lock again.
 *
 * @returns What holds it, for messages; undefined when nothing does.
 */
async function goLockHolder(
  path: string,
  options: { held: boolean },
): Promise<string | undefined> {
  const lockPath = `${path}.lock`;
  let text: string;
  let mtime: Date | null;
  try {
    [text, mtime] = await withDeadline(
      Promise.all([
        Deno.readTextFile(lockPath),
        Deno.stat(lockPath).then((st) => st.mtime),
      ]),
      { ms: OP_TIMEOUT_MS, what: `read "${lockPath}"` },
    );
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return options.held
        ? `"${lockPath}" was deleted while this call held it`
        : undefined;
    }
    throw ioError(`Cannot read lock file "${lockPath}"`, err);
  }
  const pid = text.trim();
  if (!/^[1-9]\d{0,9}$/.test(pid)) return undefined;
  let proc: ProcessInfo | undefined;
  try {
    proc = processInfo(Number(pid));
  } catch (err) {
    throw ioError(`Cannot look up PID ${pid} of "${lockPath}"`, err);
  }
  const alive = (p: ProcessInfo) =>
    p.state !== "Z" && p.state !== "X" && GO_PLUGIN_NAME.test(p.name) &&
    (mtime === null || p.startedAt <= mtime.getTime() + START_SLACK_MS);
  if (proc === undefined || !alive(proc)) {
    log.info(
      "Lock file {lock} names PID {pid}, no live Go azure-vnet: {proc}",
      {
        lock: lockPath,
        pid,
        proc: proc === undefined
          ? "no such process"
          : `"${proc.name}" (state ${proc.state}, started ${
            new Date(proc.startedAt).toISOString()
          })`,
      },
    );
    return undefined;
  }
  return `PID ${pid} ("${proc.name}") holds "${lockPath}"`;
}

/** The holder of either Go lock, as {@link goLockHolder}. */
async function goLocksHolder(
  paths: readonly string[],
  options: { held: boolean },
): Promise<string | undefined> {
  for (const path of paths) {
    const holder = await goLockHolder(path, options);
    if (holder !== undefined) return holder;
  }
  return undefined;
}

/**
 * Converts the Go plugin's state files in `stateDir` to ours, under both
 * state locks (`azure-vnet.json`'s, then `azure-vnet-ipam.json`'s; nothing
 * else takes both), once no live Go plugin call holds its own lock file
 * (see `goLockHolder`: a lock file naming a dead PID, or a PID now another
 * program's, holds nothing), waiting at most `goLockWaitMs` for it. The Go
 * files are copied to `<file>.acn-backup` first; then the IPAM file is
 * written, then the network file (an interruption leaves the network file
 * in the Go format, so the next call finishes the work). A file already
 * in our format is kept.
 *
 * Requires read and write access to the state directory.
 *
 * @param stateDir The state directory (`/var/run`).
 * @param options Dry run, the host's links, the lock timeout.
 * @returns What was converted, or undefined when neither file is the Go
 * plugin's.
 * @throws {CniError} 102 when a file cannot be adopted (damaged, or a mode
 * other than bridge), 11 on a lock timeout or while a live Go plugin call
 * still holds its lock after the wait (nothing converted), 5 on I/O.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { adoptAcnState } from "./adopt.ts";
 * const dir = await Deno.makeTempDir();
 * assert.equal(await adoptAcnState(dir), undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function adoptAcnState(
  stateDir: string,
  options: AdoptOptions = {},
): Promise<AdoptOutcome | undefined> {
  const netPath = statePath(stateDir);
  const ipamPath = ipamPathOf(stateDir);
  const lock = options.lockTimeoutMs === undefined
    ? {}
    : { lockTimeoutMs: options.lockTimeoutMs };
  const dryRun = options.dryRun === true;
  const paths = [netPath, ipamPath];
  const waitMs = options.goLockWaitMs ?? 5000;
  const until = Date.now() + waitMs;
  for (;;) {
    // A Go call still running when the binaries were replaced must finish
    // first, or its save would put the Go format back and its unlock
    // delete the lock file our flock uses. Looked at before our locks (to
    // wait without them) and again under them (a Go call may have taken
    // its lock just before ours).
    let holder = dryRun
      ? undefined
      : await goLocksHolder(paths, { held: false });
    if (holder === undefined) {
      const out = await convertLocked({
        stateDir,
        paths,
        dryRun,
        lock,
        options,
      });
      if (typeof out !== "string") return out.outcome;
      holder = out;
    }
    if (Date.now() >= until) {
      throw new CniError(
        CODES.tryAgainLater,
        `The Go azure-vnet is still running (${holder}): its state in "${stateDir}" is adopted once it is done`,
        { details: `Waited ${waitMs} ms; try again later` },
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * The conversion of {@link adoptAcnState} under both state locks.
 *
 * @returns The outcome, or what holds a Go lock (nothing converted).
 */
async function convertLocked(spec: {
  stateDir: string;
  paths: readonly string[];
  dryRun: boolean;
  lock: { lockTimeoutMs?: number };
  options: AdoptOptions;
}): Promise<string | { outcome: AdoptOutcome | undefined }> {
  const { stateDir, dryRun, lock, options } = spec;
  const [netPath = "", ipamPath = ""] = spec.paths;
  return await withStateLock(
    netPath,
    (netFile) =>
      withStateLock(ipamPath, async (ipamFile) => {
        if (!dryRun) {
          const holder = await goLocksHolder(spec.paths, { held: true });
          if (holder !== undefined) return holder;
        }
        const network = await netFile.read();
        const ipam = await ipamFile.read();
        const goNetwork = isAcnNetworkDocument(network);
        const goIpam = isAcnIpamDocument(ipam);
        if (!goNetwork && !goIpam) return { outcome: undefined };
        const conv = convertAcnState({
          network,
          ipam,
          links: options.links?.() ?? [],
          paths: { network: netPath, ipam: ipamPath },
        });
        if (dryRun) {
          return { outcome: { report: conv.report, backups: [], dryRun } };
        }
        const backups: string[] = [];
        try {
          for (
            const [go, path] of [[goNetwork, netPath], [
              goIpam,
              ipamPath,
            ]] as const
          ) {
            if (!go) continue;
            const bytes = await withDeadline(Deno.readFile(path), {
              ms: OP_TIMEOUT_MS,
              what: `read "${path}"`,
            });
            backups.push(await keepBackup(path, bytes));
          }
        } catch (err) {
          throw ioError(
            `Cannot keep a copy of the Go azure-vnet's state in "${stateDir}"`,
            err,
          );
        }
        if (conv.ipam !== undefined && conv.ipamChanged) {
          await ipamFile.write(conv.ipam);
        }
        if (goNetwork) await netFile.write(conv.state);
        return { outcome: { report: conv.report, backups, dryRun } };
      }, lock),
    lock,
  );
}

/**
 * Adopts the Go plugin's state when {@link acnStatePresent} says it is
 * there: the hook every verb runs before it reads state. Costs two stats
 * and two 64-byte reads when there is nothing to adopt.
 *
 * @param stateDir The state directory.
 * @param options The host's links and the lock timeout.
 * @throws {CniError} As {@link adoptAcnState}.
 */
export async function adoptIfPresent(
  stateDir: string,
  options: Omit<AdoptOptions, "dryRun"> = {},
): Promise<void> {
  if (!(await acnStatePresent(stateDir))) return;
  const out = await adoptAcnState(stateDir, options);
  if (out === undefined) return;
  const r = out.report;
  log.warn(
    "Adopted the Go azure-vnet {version} state in {stateDir}: networks {networks}, endpoints {endpoints}; Go files kept at {backups}",
    {
      version: r.version,
      stateDir,
      networks: r.networks.map((n) => n.name),
      endpoints: r.endpoints.map((e) => `${e.endpointId} ${e.hostVeth}`),
      backups: out.backups,
    },
  );
  for (const note of r.notes) log.warn("Adoption: {note}", { note });
}

/** Where {@link releaseAdopted} and {@link checkAdopted} find the IPAM. */
export interface AdoptedIpamOptions {
  /** The state directory (the IPAM file adoption wrote). */
  stateDir: string;
  /** Bound of the IPAM state-lock wait, in ms. */
  lockTimeoutMs?: number;
}

function adoptedEngine(options: AdoptedIpamOptions): IpamEngine {
  return new IpamEngine({
    stateDir: options.stateDir,
    ...(options.lockTimeoutMs === undefined
      ? {}
      : { lockTimeoutMs: options.lockTimeoutMs }),
  });
}

function adoptedKey(record: EndpointRecord): AttachmentKey {
  return { containerId: record.containerId, ifName: record.ifName };
}

/**
 * Releases the address of an adopted endpoint (`record.acn` set). Adoption
 * put its reservation in the IPAM file of the state directory, under the
 * record's key (`acn:<Go endpoint ID>` unless the Go file kept the full
 * container ID), so it is released there, through the IPAM engine in
 * process, whatever route the network's IPAM takes: an exec'd IPAM would
 * get that key as `CNI_CONTAINERID`, which a CNI plugin refuses (`:`,
 * code 4), and an IPAM of another type never held it.
 *
 * @param record The adopted endpoint.
 * @param options The state directory and lock timeout.
 * @throws {CniError} As the engine's release (11 on a lock timeout).
 *
 * @example Usage
 * ```ts ignore
 * await releaseAdopted(record, { stateDir: "/var/run" });
 * ```
 */
export async function releaseAdopted(
  record: EndpointRecord,
  options: AdoptedIpamOptions,
): Promise<void> {
  await adoptedEngine(options).release(adoptedKey(record), {
    network: record.network,
  });
}

/**
 * IPAM CHECK of an adopted endpoint: its address is still held under its
 * record's key, and listed in `prevResult` when one is given. In process
 * for the reasons of {@link releaseAdopted}.
 *
 * @param record The adopted endpoint.
 * @param options The state directory, lock timeout and the runtime's
 * `prevResult`.
 * @throws {CniError} 106 when the address is not held or not listed.
 *
 * @example Usage
 * ```ts ignore
 * await checkAdopted(record, { stateDir: "/var/run", prevResult });
 * ```
 */
export async function checkAdopted(
  record: EndpointRecord,
  options: AdoptedIpamOptions & { prevResult: unknown },
): Promise<void> {
  const key = adoptedKey(record);
  const held = await adoptedEngine(options).held(key);
  requireHeld(held, { key, prevResult: options.prevResult });
}

/**
 * The adopted endpoints of `network` that the runtime's
 * `cni.dev/valid-attachments` lists (by their Go endpoint ID).
 *
 * @param state The state.
 * @param spec The network and the listed attachments.
 * @returns Their keys.
 */
export function listedAdopted(
  state: AzureVnetState,
  spec: {
    network: string;
    attachments: readonly { containerID: unknown; ifname: unknown }[];
  },
): Set<string> {
  const ids = new Set(
    spec.attachments.map((a) =>
      legacyEndpointId(String(a.containerID), String(a.ifname ?? ""))
    ),
  );
  const out = new Set<string>();
  for (const [k, e] of Object.entries(state.endpoints)) {
    if (
      e.network === spec.network && e.acn !== undefined &&
      ids.has(e.acn.endpointId)
    ) out.add(k);
  }
  return out;
}

/**
 * `args` (a GC call) with the listed adopted endpoints added to
 * `cni.dev/valid-attachments` under the key their reservations have, in
 * the parsed config and in the stdin an exec'd IPAM reads, so that the
 * IPAM's GC keeps their addresses.
 *
 * @param args The GC call.
 * @param keep The adopted endpoints to keep.
 * @returns The call for the IPAM route.
 */
export function withAdoptedAttachments(
  args: CmdArgs,
  keep: readonly EndpointRecord[],
): CmdArgs {
  if (keep.length === 0) return args;
  const listed = gcAttachments(args.config, { required: true });
  const list = [
    ...listed,
    ...keep.map((e) => ({ containerID: e.containerId, ifname: e.ifName })),
  ];
  const key = "cni.dev/valid-attachments";
  const sent: unknown = JSON.parse(new TextDecoder().decode(args.stdin));
  const stdin = typeof sent === "object" && sent !== null
    ? new TextEncoder().encode(JSON.stringify({ ...sent, [key]: list }))
    : args.stdin;
  return { ...args, config: { ...args.config, [key]: list }, stdin };
}

/**
 * True when the pod end of `record` is in the call's `CNI_NETNS`: the
 * link named `CNI_IFNAME` there is the peer of the recorded host veth and
 * has the recorded MAC.
 */
function attachedIn(
  kernel: Kernel,
  host: KernelNs,
  spec: { args: CmdArgs; record: EndpointRecord },
): boolean {
  const pod = podEnd(kernel, host, {
    netns: spec.args.netns,
    ifName: spec.args.ifName,
    hostVeth: spec.record.hostVeth,
  });
  return pod !== undefined && pod.link.mac === spec.record.podMac;
}

/**
 * True when the call's `prevResult` names the pod interface with the
 * recorded MAC and every recorded address. (The Go plugin's own results
 * carry no MAC, so they never do.)
 */
function namedByPrevResult(args: CmdArgs, record: EndpointRecord): boolean {
  const prev = podFromPrevResult(args.config.prevResult, args.ifName);
  if (prev === undefined || record.addresses.length === 0) return false;
  try {
    if (kernelMac(prev.podMac) !== kernelMac(record.podMac)) return false;
  } catch {
    return false;
  }
  const ips = new Set(prev.addresses.map(stripPrefix));
  return record.addresses.every((a) => ips.has(stripPrefix(a)));
}

/**
 * The recorded endpoint of a DEL's or CHECK's attachment: the record under
 * its key, or an adopted one found by its Go endpoint ID (container ID[:8]
 * `-` ifname) when the call shows that it is about that pod: its pod end
 * is in `CNI_NETNS` (the peer of the recorded host veth, with the recorded
 * MAC), or its `prevResult` names the recorded MAC and addresses, or (DEL
 * only) the recorded host veth is gone, so no live pod has the record.
 * Another container that shares the first 8 characters (its DEL after a
 * failed ADD, a repeated DEL) while the adopted pod lives gets undefined,
 * and so touches nothing of it.
 *
 * @param kernel Opens the node's and the pod's netns (only for a match by
 * Go endpoint ID without a prevResult naming it).
 * @param spec The call, the state, the calling network.
 * @returns The key and record, or undefined.
 *
 * @example Usage
 * ```ts ignore
 * const found = findOwnAttachment(ctx.kernel(), { args, state, network });
 * ```
 */
export function findOwnAttachment(
  kernel: Kernel,
  spec: { args: CmdArgs; state: AzureVnetState; network: string },
): FoundAttachment | undefined {
  const { args } = spec;
  const found = findAttachment(spec.state, { ...args, network: spec.network });
  if (found === undefined || !found.byGoId) return found;
  if (namedByPrevResult(args, found.record)) return found;
  {
    using host = kernel.host();
    if (attachedIn(kernel, host, { args, record: found.record })) return found;
    // A DEL after the pod's netns went (a reboot, a removed sandbox): its
    // veth went with it, no live pod has that record, and what is left
    // (rules, the address) is removed now, as GC would remove it.
    if (
      args.command === "DEL" && host.link(found.record.hostVeth) === undefined
    ) {
      return found;
    }
  }
  log.info(
    "{command} {id}/{ifName}: shares the Go endpoint ID {goId} of {key}, but neither its netns nor its prevResult shows that pod: left alone",
    {
      command: args.command,
      id: args.containerId,
      ifName: args.ifName,
      goId: found.record.acn?.endpointId,
      key: found.key,
    },
  );
  return undefined;
}

/**
 * The adopted endpoint of an ADD's attachment when it is attached in the
 * netns asked for (a repeated ADD of a pod the Go plugin made): found by
 * its Go endpoint ID, and its pod end in `CNI_NETNS` is the peer of its
 * host veth with its MAC. Another pod whose container ID merely shares the
 * first 8 characters gets undefined, and a new attachment of its own.
 *
 * @param kernel Opens the pod's netns.
 * @param host The node's netns.
 * @param spec The ADD, the state, the calling network.
 * @returns The adopted record, or undefined.
 */
export function adoptedAttachedHere(
  kernel: Kernel,
  host: KernelNs,
  spec: { args: CmdArgs; state: AzureVnetState; network: string },
): EndpointRecord | undefined {
  const { args } = spec;
  const found = findAttachment(spec.state, { ...args, network: spec.network });
  if (found?.record.acn === undefined) return undefined;
  if (!attachedIn(kernel, host, { args, record: found.record })) {
    return undefined;
  }
  log.info("ADD {key}: attached by the Go azure-vnet as {id}", {
    key: found.key,
    id: found.record.acn.endpointId,
  });
  return found.record;
}
