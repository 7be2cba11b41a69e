/**
 * The persisted IPAM state (`<stateDir>/azure-vnet-ipam.json`), version 1.
 *
 * ```json
 * {"version":1,"lastRefresh":1700000000000,"bootId":"…","pools":{
 *   "10.240.0.0/16":{"subnet":"10.240.0.0/16","gateway":"10.240.0.1",
 *     "ifName":"eth0","macAddress":"000d3af9dca6","priority":0,
 *     "primaryIps":["10.240.0.4"],
 *     "addresses":{"10.240.0.5":{"containerId":"3f1c…","ifName":"eth0",
 *                                "network":"azure"},
 *                  "10.240.0.6":{}}}}}
 * ```
 *
 * A free address has no `containerId`. `network` is the holder's network
 * name (the config's `name`); records written before it existed lack it.
 * `stale: true` marks an address that
 * the source no longer reports but that is still held; it is dropped when
 * released.
 *
 * Sticky addresses (`ipam.sticky`, #16) add three optional fields, so a
 * file written without them still parses and the version stays 1: `pod`
 * (`namespace/name` from `CNI_ARGS`) on a held address, and `lastPod` with
 * `releasedAt` (epoch ms) on a free address that a pod released. An older
 * reader keeps them as unknown fields and drops them on its next release;
 * that only forgets the memory. The warm pool's NIC changes that the source
 * does not show yet (`nicChanges`, per MAC: `removed` and `added`, address
 * to expiry in epoch ms) are optional too, and an older reader keeps them
 * as an unknown field. `lastRefresh` is the epoch time (ms) of the last successful
 * source refresh, 0 when never; `bootId` names the boot at that time
 * (`boot-minute-<N>`, `boot_id.ts`; any string parses).
 *
 * @module
 */
import { ipFamily, parseCidr } from "@vnet/address";
import { CniError, PLUGIN_CODES, readParsedStateFile } from "@vnet/cni";

/** The state file's format version. */
export const IPAM_STATE_VERSION = 1;

/** The state file's name inside the state directory. */
export const IPAM_STATE_FILE = "azure-vnet-ipam.json";

/** One address record of a pool. */
export interface AddressRecord {
  /** The holder's full `CNI_CONTAINERID`; absent when free. */
  containerId?: string;
  /** The holder's `CNI_IFNAME`. */
  ifName?: string;
  /**
   * The holder's network name (the config's `name`). GC of one network
   * collects only its own reservations; a record without it (written by
   * an older version) is collectable by any network.
   */
  network?: string;
  /** Set when the source no longer reports the address. */
  stale?: true;
  /**
   * The holder's pod, `namespace/name` (`K8S_POD_NAMESPACE`,
   * `K8S_POD_NAME`), recorded only when the reserve was sticky (#16).
   */
  pod?: string;
  /** On a free address: the pod that released it last (sticky, #16). */
  lastPod?: string;
  /** On a free address: when `lastPod` released it, epoch ms. */
  releasedAt?: number;
}

/** One pool: a subnet on a host NIC. */
export interface PoolState {
  /** The subnet CIDR (also the pool's key). */
  subnet: string;
  /** Host number 1 of the subnet. */
  gateway: string;
  /** The host link the NIC was matched to, when known. */
  ifName?: string;
  /** The NIC's MAC, 12 lower-case hex digits, or `"*"`. */
  macAddress: string;
  /** 1 for a secondary NIC (preferred), 0 for the primary NIC. */
  priority: number;
  /**
   * The NIC's primary addresses in this subnet, and any other address the
   * node holds on a link: never handed out.
   */
  primaryIps: string[];
  /** Allocatable addresses, keyed by dotted quad. */
  addresses: Record<string, AddressRecord>;
}

/**
 * What the warm pool changed on one NIC through ARM that the source (the
 * wireserver or IMDS, which lag ARM) may not show yet: address to expiry,
 * epoch ms (`nic_changes.ts`).
 */
export interface NicChanges {
  /**
   * Withdrawn from the pools (ARM is removing them): a refresh that still
   * lists one does not bring it back.
   */
  readonly removed?: Readonly<Record<string, number>>;
  /**
   * Added to the pools (ARM added them): a refresh that does not list one
   * yet does not drop it.
   */
  readonly added?: Readonly<Record<string, number>>;
}

/** The whole state document. */
export interface IpamState {
  version: typeof IPAM_STATE_VERSION;
  /** Epoch ms of the last successful refresh; 0 when never. */
  lastRefresh: number;
  /** The boot at the last refresh (`readBootId()` of `boot_id.ts`). */
  bootId: string;
  /** Pools keyed by subnet CIDR. */
  pools: Record<string, PoolState>;
  /**
   * The warm pool's NIC changes the source may not show yet, by MAC;
   * absent when there are none (older files lack it). Replaced, never
   * edited, by an update.
   */
  nicChanges?: Readonly<Record<string, NicChanges>>;
}

/** A new, empty state. */
export function emptyIpamState(bootId: string): IpamState {
  return { version: IPAM_STATE_VERSION, lastRefresh: 0, bootId, pools: {} };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** An address-to-expiry map, or absent. */
function validExpiries(v: unknown): boolean {
  return v === undefined ||
    (isObject(v) && Object.values(v).every((t) => typeof t === "number"));
}

/** `nicChanges`: per MAC, optional `removed` and `added` expiry maps. */
function validNicChanges(v: unknown): boolean {
  return isObject(v) &&
    Object.values(v).every((nic) =>
      isObject(nic) && validExpiries(nic.removed) && validExpiries(nic.added)
    );
}

function corrupt(path: string, why: string): CniError {
  return new CniError(
    PLUGIN_CODES.corruptState,
    `Cannot use IPAM state file "${path}": ${why}`,
    {
      details:
        `Inspect or repair it with \`deno task state\`, or move it aside to start empty`,
    },
  );
}

/** The family of CIDR text, else undefined. */
function subnetFamily(cidr: string): 4 | 6 | undefined {
  try {
    return parseCidr(cidr).family;
  } catch {
    return undefined;
  }
}

/**
 * Validates a parsed state document.
 *
 * @param value The parsed JSON (`undefined` for a missing or empty file).
 * @param path The file, for messages.
 * @returns The state, or `undefined` when `value` is `undefined`.
 * @throws {CniError} Code 102 when the document is no version-1 state.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIpamState } from "./state.ts";
 * const s = parseIpamState(
 *   { version: 1, lastRefresh: 0, bootId: "b", pools: {} },
 *   "/run/x.json",
 * );
 * assert.equal(s?.version, 1);
 * ```
 */
export function parseIpamState(
  value: unknown,
  path: string,
): IpamState | undefined {
  if (value === undefined) return undefined;
  if (!isObject(value)) throw corrupt(path, "not a JSON object");
  if (isObject(value.IPAM) && value.version === undefined) {
    throw corrupt(
      path,
      "it was written by the Go azure-vnet-ipam; azure-vnet adopts it on its next call, or run `deno task state adopt`",
    );
  }
  if (value.version !== IPAM_STATE_VERSION) {
    throw corrupt(
      path,
      `unsupported format version ${JSON.stringify(value.version)}`,
    );
  }
  if (typeof value.lastRefresh !== "number" || !isObject(value.pools)) {
    throw corrupt(path, `"lastRefresh" or "pools" missing or malformed`);
  }
  for (const [key, pool] of Object.entries(value.pools)) {
    if (
      !isObject(pool) || typeof pool.subnet !== "string" ||
      typeof pool.gateway !== "string" || !isObject(pool.addresses) ||
      !Array.isArray(pool.primaryIps)
    ) {
      throw corrupt(path, `pool "${key}" is malformed`);
    }
    // The allocator parses every key: text that is no address of the
    // pool's family would fail it later as an internal error.
    const family = subnetFamily(pool.subnet);
    if (key !== pool.subnet || family === undefined) {
      throw corrupt(
        path,
        `pool "${key}" has subnet ${JSON.stringify(pool.subnet)}`,
      );
    }
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (!isObject(rec) || ipFamily(ip) !== family) {
        throw corrupt(path, `address "${ip}" of pool "${key}" is malformed`);
      }
    }
  }
  if (value.nicChanges !== undefined && !validNicChanges(value.nicChanges)) {
    throw corrupt(path, `"nicChanges" is malformed`);
  }
  return {
    ...value,
    bootId: typeof value.bootId === "string" ? value.bootId : "",
  } as unknown as IpamState;
}

/**
 * Reads and validates an IPAM state file without locking (for tools and
 * DEL's evidence). Writes are atomic renames, so an unlocked read sees a
 * whole document. The state is deep-frozen, and shared with earlier reads of
 * the same text (`readParsedStateFile` of `@vnet/cni`).
 *
 * @param path The state file.
 * @returns The state, frozen, or `undefined` when the file is missing.
 * @throws {CniError} Code 102 when the file is empty or cannot be parsed (a
 * copy is kept aside); code 5 when it is not a regular file or cannot be
 * read in time.
 *
 * @example Usage
 * ```ts ignore
 * import { readIpamState } from "@vnet/ipam";
 * const state = await readIpamState("/var/run/azure-vnet-ipam.json");
 * ```
 */
export function readIpamState(
  path: string,
): Promise<IpamState | undefined> {
  // The same reader as the locked path: a FIFO or directory is code 5, an
  // empty or unparsable file is code 102 with a copy kept aside, and every
  // file operation has a deadline.
  return readParsedStateFile(path, parseIpamState);
}

/**
 * What an update of the IPAM state may edit, copied: the document, its
 * `pools` map, each pool, and each pool's `primaryIps` and `addresses`.
 * The address records stay shared (and frozen): an update replaces a
 * record, never edits one (`FileStore`).
 *
 * @param state The state (undefined: none yet).
 * @returns The copy.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { copyIpamState } from "./state.ts";
 * const rec = Object.freeze({ containerId: "c" });
 * const s = { version: 1 as const, lastRefresh: 0, bootId: "b", pools: {
 *   "10.0.0.0/24": { subnet: "10.0.0.0/24", gateway: "10.0.0.1",
 *     macAddress: "*", priority: 0, primaryIps: [], addresses: { "10.0.0.4": rec } },
 * } };
 * const c = copyIpamState(s);
 * assert.notEqual(c?.pools["10.0.0.0/24"]?.addresses, s.pools["10.0.0.0/24"].addresses);
 * assert.equal(c?.pools["10.0.0.0/24"]?.addresses["10.0.0.4"], rec);
 * ```
 */
export function copyIpamState(
  state: IpamState | undefined,
): IpamState | undefined {
  if (state === undefined) return undefined;
  const pools: Record<string, PoolState> = {};
  for (const [key, pool] of Object.entries(state.pools)) {
    pools[key] = {
      ...pool,
      primaryIps: [...pool.primaryIps],
      addresses: { ...pool.addresses },
    };
  }
  return { ...state, pools };
}
