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
import { type IpConfigModel, isIpv6Config, openNic } from "@vnet/arm";

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

/**
 * Reads the addresses in use from the IPAM state file: an address with a
 * non-empty `containerId`. A missing file is an error, not "nothing in
 * use": the tool may run with the wrong `--state-dir`, or off the node.
 *
 * @param path Path of `azure-vnet-ipam.json`.
 * @returns The addresses in use.
 * @throws {Deno.errors.NotFound} When there is no such file.
 * @throws {SyntaxError} When the file is not the expected JSON.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { addressesInUse } from "./provision.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(
 *   `${dir}/azure-vnet-ipam.json`,
 *   '{"pools":{"p":{"addresses":{"10.0.0.5":{"containerId":"c1"},"10.0.0.6":{}}}}}',
 * );
 * assert.deepEqual(await addressesInUse(`${dir}/azure-vnet-ipam.json`), new Set(["10.0.0.5"]));
 * await assert.rejects(addressesInUse(`${dir}/none.json`), {
 *   name: "NotFound",
 *   message: /No such file/,
 * });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function addressesInUse(path: string): Promise<Set<string>> {
  const text = await Deno.readTextFile(path);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (cause) {
    throw new SyntaxError(`Cannot parse IPAM state "${path}"`, { cause });
  }
  const pools = (doc as { pools?: unknown } | null)?.pools;
  if (typeof pools !== "object" || pools === null) {
    throw new SyntaxError(`Cannot parse IPAM state "${path}": no pools`);
  }
  const used = new Set<string>();
  for (const pool of Object.values(pools as Record<string, unknown>)) {
    const addresses = (pool as { addresses?: unknown } | null)?.addresses;
    if (typeof addresses !== "object" || addresses === null) continue;
    for (const [ip, rec] of Object.entries(addresses)) {
      const id = (rec as { containerId?: unknown } | null)?.containerId;
      if (typeof id === "string" && id !== "") used.add(ip);
    }
  }
  return used;
}

/**
 * {@link addressesInUse}, or, when the file cannot be read: with `force`
 * nothing in use (after a warning), without it an error that says why and
 * what to do.
 */
async function readInUse(
  statePath: string,
  options: {
    force: boolean;
    progress: (line: string) => void;
    refusal: string;
  },
): Promise<Set<string>> {
  try {
    return await addressesInUse(statePath);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? `no IPAM state file "${statePath}"`
      : `cannot read IPAM state file "${statePath}" (${
        err instanceof Error ? err.message : String(err)
      })`;
    if (options.force) {
      options.progress(
        `Warning: ${why}; --force: removing ipconfigs without knowing which addresses are in use`,
      );
      return new Set();
    }
    throw new Error(
      `${options.refusal}: ${why} to tell which addresses are in use; run it on the node with --state-dir (or AZURE_VNET_STATE_DIR) naming the plugins' state dir, or pass --force to remove ipconfigs anyway`,
      { cause: err },
    );
  }
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
 * @param options Counts, NIC id, dry run, state dir, endpoints, CA,
 *   progress.
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
  const arm = await openNic({
    nicId: options.nicId,
    imdsUrl: options.imdsUrl,
    armEndpoint: options.armEndpoint,
    caFile: options.caFile,
    pollIntervalMs: options.pollIntervalMs,
    progress,
  });
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

  if (removeList.length > 0) {
    const statePath = `${options.stateDir ?? "/var/run"}/azure-vnet-ipam.json`;
    const inUse = await readInUse(statePath, {
      force: options.force === true,
      progress,
      refusal: `Cannot scale NIC "${nicName}" down to ${wantText}`,
    });
    const busy = removeList.filter((c) =>
      c.privateIPAddress !== undefined && inUse.has(c.privateIPAddress)
    );
    if (busy.length > 0) {
      throw new Error(
        `Cannot scale NIC "${nicName}" down to ${wantText}: ${
          busy.map((c) => `${c.name} (${c.privateIPAddress})`).join(", ")
        } in use per ${statePath}; release those pods first or choose a larger count`,
      );
    }
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
  progress(`Updating NIC ${nicName} (long-running operation)`);
  const updated = await arm.update(nic, {
    add: added,
    addIpv6: v6.add,
    remove: removed,
  });
  const result = report((updated.ipConfigurations ?? []) as IpConfigModel[]);
  await waitForImds(result, nic.macAddress, options, progress);
  return {
    nicId,
    changed: true,
    added: addedAll,
    removed,
    ipConfigurations: result,
  };
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
