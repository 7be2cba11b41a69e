/**
 * Grows or shrinks the node's NIC to exactly N IP configurations through
 * ARM, with the SDK code path of `@vnet/arm` (which loads `@azure/arm-network`
 * with a dynamic `import()`, so nothing else pays for the SDK); on request
 * also to exactly K IPv6 ones (dual-stack, #15).
 *
 * @module
 */
import { getImdsInterfaces } from "@vnet/azure";
import { azureMac } from "@vnet/address";
import {
  ArmConflictError,
  type ArmNic,
  type IpConfigModel,
  isIpv6Config,
  type NicModel,
  openNic,
  type OpenNicOptions,
} from "@vnet/arm";
import { IPAM_STATE_FILE, IpamEngine } from "@vnet/ipam";
import { IpamGuard } from "./ipam_guard.ts";

/** Smallest and largest `--count` (IP configurations per NIC, primary included). */
export const MIN_COUNT = 1;
/** Azure's per-NIC limit. */
export const MAX_COUNT = 256;
/** Default `--count` (acs-engine's historical default). */
export const DEFAULT_COUNT = 128;

/** Options of {@linkcode provision}. */
export interface ProvisionOptions {
  /** Wanted IPv4 IP configurations, primary included (1..256). */
  count: number;
  /**
   * Wanted IPv6 IP configurations (0..255, at most 256 with `count`), in
   * the primary's subnet, which needs an IPv6 prefix. The NIC's first IPv6
   * ipconfig (the node's own address) is the last one removed. Default:
   * the IPv6 ipconfigs stay as they are.
   */
  ipv6Count?: number | undefined;
  /** ARM id of the NIC; default: found through IMDS. */
  nicId?: string | undefined;
  /** Plan only; change nothing. */
  dryRun?: boolean | undefined;
  /** Directory of `azure-vnet-ipam.json` (default `/var/run`). */
  stateDir?: string | undefined;
  /**
   * Scale down even when the IPAM state file cannot be read (missing,
   * unreadable, not the expected JSON), so nothing tells which addresses
   * are in use. Default: such a scale-down is refused.
   */
  force?: boolean | undefined;
  /** IMDS base URL (default `http://169.254.169.254`). */
  imdsUrl?: string | undefined;
  /** ARM endpoint (default `https://management.azure.com`). */
  armEndpoint?: string | undefined;
  /** PEM file of a CA to trust for ARM (tests, sandbox). */
  caFile?: string | undefined;
  /** LRO poll interval when ARM sends no Retry-After (default 1000 ms). */
  pollIntervalMs?: number | undefined;
  /** Receives progress lines (default: none). */
  progress?: ((line: string) => void) | undefined;
  /** Binds the NIC (default `openNic` of `@vnet/arm`; tests wrap it). */
  openNic?: ((options: OpenNicOptions) => Promise<ArmNic>) | undefined;
  /** The IPAM engine on `stateDir` (default: a new one; tests race it). */
  engine?: IpamEngine | undefined;
}

/** One IP configuration as reported after provisioning. */
export interface ProvisionedIpConfig {
  name: string;
  privateIPAddress: string;
  primary: boolean;
}

/** What {@linkcode provision} did. */
export interface ProvisionResult {
  nicId: string;
  /** False when the NIC already matched or for a dry run. */
  changed: boolean;
  added: string[];
  removed: string[];
  ipConfigurations: ProvisionedIpConfig[];
}

/**
 * Validates a `--count` value.
 *
 * @param text The option text (or a number).
 * @returns The count.
 * @throws {RangeError} When not an integer in 1..256.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCount } from "./provision.ts";
 *
 * assert.equal(parseCount("31"), 31);
 * assert.throws(() => parseCount("257"), RangeError);
 * ```
 */
export function parseCount(text: string | number): number {
  const s = String(text).trim();
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isInteger(n) || n < MIN_COUNT || n > MAX_COUNT) {
    throw new RangeError(
      `Cannot provision: count must be an integer in ${MIN_COUNT}..${MAX_COUNT}, got "${text}"`,
    );
  }
  return n;
}

/**
 * Validates an `--ipv6-count` value against the `--count` beside it: the
 * two together stay within Azure's 256 per NIC.
 *
 * @param text The option text (or a number).
 * @param count The IPv4 count, already valid.
 * @returns The IPv6 count.
 * @throws {RangeError} When not an integer in 0..(256 - count).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIpv6Count } from "./provision.ts";
 *
 * assert.equal(parseIpv6Count("8", 8), 8);
 * assert.throws(() => parseIpv6Count("250", 8), RangeError);
 * ```
 */
export function parseIpv6Count(text: string | number, count: number): number {
  const s = String(text).trim();
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  const max = MAX_COUNT - count;
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new RangeError(
      `Cannot provision: ipv6-count must be an integer in 0..${max} (at most ${MAX_COUNT} ipconfigs with count ${count}), got "${text}"`,
    );
  }
  return n;
}

function wantedSecondaryNames(primaryName: string, count: number): string[] {
  const names: string[] = [];
  for (let k = 1; names.length < count - 1; k++) {
    if (`ipconfig${k}` !== primaryName) names.push(`ipconfig${k}`);
  }
  return names;
}

/**
 * The IPv6 side of the plan: keep the NIC's first `want` IPv6 ipconfigs
 * (its first is the node's own address), remove the rest, or add
 * `ipv6config<k>` names no ipconfig has yet.
 */
function planIpv6(
  configs: IpConfigModel[],
  want: number | undefined,
  taken: Set<string>,
): { keep: IpConfigModel[]; remove: IpConfigModel[]; add: string[] } {
  const v6 = configs.filter(isIpv6Config);
  if (want === undefined) return { keep: v6, remove: [], add: [] };
  const add: string[] = [];
  for (let k = 1; v6.length + add.length < want; k++) {
    if (!taken.has(`ipv6config${k}`)) add.push(`ipv6config${k}`);
  }
  return { keep: v6.slice(0, want), remove: v6.slice(want), add };
}

/**
 * Makes the node's NIC carry exactly `count` IPv4 IP configurations:
 * the primary plus `ipconfig2..N` (Dynamic, in the primary's subnet), and
 * with `ipv6Count` exactly that many IPv6 ones (new ones are Dynamic
 * `ipv6config<k>` in the same subnet).
 *
 * Finds the NIC through IMDS (list the resource group's NICs, match
 * `virtualMachine.id` and the MAC) unless `nicId` is given. Idempotent: a
 * NIC that already matches is not touched. A scale-down removes only
 * configurations whose address the IPAM state does not show in use, and
 * otherwise refuses without changing anything; without a readable IPAM
 * state file it refuses too, unless `force`.
 *
 * The IPAM is kept in step with the NIC as the agent's warm pool keeps it
 * ({@link IpamGuard}, `IpamEngine.syncNic`): before the PUT a scale-down
 * withdraws the IPv4 addresses it removes from the IPAM under its lock and
 * reads again who holds what (a pod that took one meanwhile makes it
 * refuse and give the rest back); after the PUT the IPAM takes the NIC's
 * addresses at once (the removed ones stay out, new ones are free); after
 * a failed PUT it reads the NIC again and gives back only what the NIC
 * still has. Without a state file the IPAM is left alone.
 *
 * @param options Counts, NIC id, dry run, state dir, endpoints, CA,
 *   progress, and the NIC binding and IPAM engine (test seams).
 * @returns What changed and the resulting configurations.
 * @throws {RangeError} When `count` is out of 1..256 or `ipv6Count` out of
 *   0..(256 - count).
 * @throws {Error} For a scale-set instance NIC, a NIC that cannot be found,
 *   a scale-down that would remove addresses in use, or one without a
 *   readable IPAM state file (and no `force`).
 * @throws {AzureHttpError} When IMDS fails.
 *
 * @example Usage
 * ```ts ignore
 * const result = await provision({ count: 31 });
 * ```
 */
export async function provision(
  options: ProvisionOptions,
): Promise<ProvisionResult> {
  const count = parseCount(options.count);
  const ipv6Count = options.ipv6Count === undefined
    ? undefined
    : parseIpv6Count(options.ipv6Count, count);
  const progress = options.progress ?? (() => {});
  const arm = await (options.openNic ?? openNic)({
    nicId: options.nicId,
    imdsUrl: options.imdsUrl,
    armEndpoint: options.armEndpoint,
    caFile: options.caFile,
    pollIntervalMs: options.pollIntervalMs,
    progress,
  });
  for (let attempt = 1;; attempt++) {
    try {
      return await provisionOnce(arm, { options, count, ipv6Count, progress });
    } catch (err) {
      // Another writer (the agent's warm pool, the portal) changed the NIC
      // between our read and our PUT: ARM refused the stale PUT (If-Match),
      // so nothing of theirs was lost. Read it again and plan again.
      if (!(err instanceof ArmConflictError) || attempt >= CONFLICT_ATTEMPTS) {
        throw err;
      }
      progress(
        `NIC ${arm.ref.name} changed since it was read (ARM refused the update, 412): reading it again`,
      );
    }
  }
}

/** How often a scale is planned again after ARM refused a stale update. */
const CONFLICT_ATTEMPTS = 3;

/**
 * One read, plan and update of the NIC (see {@link provision}).
 */
async function provisionOnce(
  arm: ArmNic,
  spec: {
    options: ProvisionOptions;
    count: number;
    ipv6Count: number | undefined;
    progress: (line: string) => void;
  },
): Promise<ProvisionResult> {
  const { options, count, ipv6Count, progress } = spec;
  const nicName = arm.ref.name;
  const nic = await arm.get();
  const nicId = nic.id ?? nicName;
  const configs = (nic.ipConfigurations ?? []) as IpConfigModel[];
  const primary = configs.find((c) => c.primary === true);
  if (primary?.name === undefined || primary.subnet?.id === undefined) {
    throw new Error(`Cannot provision NIC "${nicId}": no primary ipconfig`);
  }
  const wanted = new Set(wantedSecondaryNames(primary.name, count));
  const v4 = configs.filter((c) => !isIpv6Config(c));
  const v4Keep = v4.filter((c) =>
    c === primary || (c.name !== undefined && wanted.has(c.name))
  );
  const present = new Set(v4Keep.map((c) => c.name));
  const added = [...wanted].filter((n) => !present.has(n));
  const v6 = planIpv6(
    configs,
    ipv6Count,
    new Set([...configs.map((c) => c.name ?? ""), ...wanted]),
  );
  const keep = configs.filter((c) => v4Keep.includes(c) || v6.keep.includes(c));
  const removeList = configs.filter((c) => !keep.includes(c));
  const removed = removeList.map((c) => c.name ?? "?");
  const addedAll = [...added, ...v6.add];
  const dualStack = v6.keep.length + v6.remove.length + v6.add.length > 0;
  const wantText = dualStack
    ? `${count} IPv4 and ${v6.keep.length + v6.add.length} IPv6`
    : `${count}`;
  progress(
    dualStack
      ? `NIC ${nicName} has ${v4.length} IPv4 and ${
        v6.keep.length + v6.remove.length
      } IPv6 ipconfigs; want ${wantText}: add ${addedAll.length}, remove ${removed.length}`
      : `NIC ${nicName} has ${configs.length} ipconfigs; want ${count}: add ${added.length}, remove ${removed.length}`,
  );

  const stateDir = options.stateDir ?? "/var/run";
  const statePath = `${stateDir}/${IPAM_STATE_FILE}`;
  const refusal = `Cannot scale NIC "${nicName}" down to ${wantText}`;
  const openIpam = () =>
    IpamGuard.open({
      statePath,
      engine: options.engine ?? new IpamEngine({ stateDir }),
      progress,
    });
  /** Refuses when the IPAM shows one of the addresses to remove in use. */
  function refuseBusy(ipam: IpamGuard): void {
    const busy = ipam.held(addressesOf(removeList));
    if (busy.length === 0) return;
    throw new Error(
      `${refusal}: ${
        removeList.filter((c) => busy.includes(c.privateIPAddress ?? ""))
          .map((c) => `${c.name} (${c.privateIPAddress})`).join(", ")
      } in use per ${statePath}; release those pods first or choose a larger count`,
    );
  }

  let ipam: IpamGuard | undefined;
  if (removeList.length > 0) {
    ipam = await openIpam();
    const why = ipam.unreadableReason;
    if (why !== undefined) {
      if (options.force !== true) {
        throw new Error(
          `${refusal}: ${why} to tell which addresses are in use; run it on the node with --state-dir (or AZURE_VNET_STATE_DIR) naming the plugins' state dir, or pass --force to remove ipconfigs anyway`,
        );
      }
      progress(
        `Warning: ${why}; --force: removing ipconfigs without knowing which addresses are in use`,
      );
    }
    refuseBusy(ipam);
  }

  function report(list: IpConfigModel[]): ProvisionedIpConfig[] {
    return list.map((c) => ({
      name: c.name ?? "",
      privateIPAddress: c.privateIPAddress ?? "",
      primary: c.primary === true,
    }));
  }

  if (addedAll.length === 0 && removed.length === 0) {
    progress(`NIC ${nicName} already has ${wantText} ipconfigs; nothing to do`);
    return {
      nicId,
      changed: false,
      added: addedAll,
      removed,
      ipConfigurations: report(keep),
    };
  }
  if (options.dryRun === true) {
    progress(
      `Dry run: would add [${addedAll.join(", ")}] and remove [${
        removed.join(", ")
      }]`,
    );
    return {
      nicId,
      changed: false,
      added: addedAll,
      removed,
      ipConfigurations: report(configs),
    };
  }
  ipam ??= await openIpam();
  const mac = nic.macAddress ?? "";
  const before = secondaryAddresses(configs);
  // The IPAM syncs its IPv4 pools only: IPv6 addresses are checked above,
  // not withdrawn.
  const going = new Set(secondaryAddresses(removeList));
  const withdrawing = going.size > 0 && ipam.readable;
  if (withdrawing && mac === "") {
    const why =
      "ARM reports no MAC address for it, so the addresses to remove cannot be withdrawn from the IPAM first";
    if (options.force !== true) throw new Error(`${refusal}: ${why}`);
    progress(`Warning: ${why}; --force: removing ipconfigs anyway`);
  } else if (withdrawing) {
    // Withdraw first, under the IPAM's lock: from now on no ADD reserves an
    // address ARM is about to remove. A pod that took one since the read
    // above makes the scale-down refuse, and the rest goes back.
    progress(
      `Withdrawing ${[...going].join(", ")} from the IPAM (${statePath})`,
    );
    await ipam.withdraw({
      macAddress: mac,
      keep: before.filter((ip) => !going.has(ip)),
      going: [...going],
    });
    try {
      refuseBusy(ipam);
    } catch (err) {
      await ipam.sync(
        { macAddress: mac, addresses: before },
        "give back the withdrawn addresses",
      );
      throw err;
    }
  }
  progress(`Updating NIC ${nicName} (long-running operation)`);
  let updated: NicModel;
  try {
    updated = await arm.update(nic, {
      add: added,
      addIpv6: v6.add,
      remove: removed,
    });
  } catch (err) {
    if (withdrawing && mac !== "") {
      await recoverIpam(arm, { ipam, mac, progress });
    }
    throw err;
  }
  const after = (updated.ipConfigurations ?? []) as IpConfigModel[];
  await ipam.sync(
    {
      macAddress: updated.macAddress ?? mac,
      addresses: secondaryAddresses(after),
    },
    "record the NIC's new addresses",
  );
  const result = report(after);
  await waitForImds(result, nic.macAddress, options, progress);
  return {
    nicId,
    changed: true,
    added: addedAll,
    removed,
    ipConfigurations: result,
  };
}

/** The addresses of some ipconfigs. */
function addressesOf(configs: readonly IpConfigModel[]): string[] {
  return configs.flatMap((c) =>
    c.privateIPAddress === undefined ? [] : [c.privateIPAddress]
  );
}

/** The NIC's secondary IPv4 addresses: what the IPAM's pools carry. */
function secondaryAddresses(configs: readonly IpConfigModel[]): string[] {
  return addressesOf(
    configs.filter((c) => c.primary !== true && !isIpv6Config(c)),
  );
}

/**
 * After a failed PUT of a scale-down, the IPAM takes the NIC as ARM has it
 * now: what it still carries goes back, what it lost stays out (the PUT
 * may have been applied although the call failed, e.g. while polling). If
 * the NIC cannot be read, nothing goes back.
 */
async function recoverIpam(
  arm: ArmNic,
  context: { ipam: IpamGuard; mac: string; progress: (line: string) => void },
): Promise<void> {
  let now: NicModel;
  try {
    now = await arm.get();
  } catch (err) {
    context.progress(
      `Warning: the NIC update failed and the NIC cannot be read again (${
        err instanceof Error ? err.message : String(err)
      }); the withdrawn addresses stay out of the IPAM until it refreshes after they expire`,
    );
    return;
  }
  await context.ipam.sync(
    {
      macAddress: now.macAddress ?? context.mac,
      addresses: secondaryAddresses(
        (now.ipConfigurations ?? []) as IpConfigModel[],
      ),
    },
    "take the NIC's addresses after the failed update",
  );
}

async function waitForImds(
  configs: ProvisionedIpConfig[],
  armMac: string | undefined,
  options: ProvisionOptions,
  progress: (line: string) => void,
): Promise<void> {
  let mac: string;
  try {
    mac = azureMac(armMac ?? "");
  } catch {
    return;
  }
  const want = configs.map((c) => c.privateIPAddress);
  const interval = options.pollIntervalMs ?? 1000;
  for (let attempt = 0; attempt < 10; attempt++) {
    const host = await getImdsInterfaces({ baseUrl: options.imdsUrl });
    const nic = host.find((h) => h.macAddress === mac);
    if (nic === undefined) return;
    const seen = new Set(
      nic.subnets.flatMap((s) => s.addresses.map((a) => a.address)),
    );
    if (want.every((ip) => seen.has(ip)) && seen.size === want.length) {
      progress(`IMDS reports all ${want.length} addresses`);
      return;
    }
    await new Promise((r) => setTimeout(r, interval));
  }
  progress("IMDS does not report the new addresses yet; they may lag");
}
