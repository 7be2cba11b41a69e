/**
 * The plugin's state file (`<stateDir>/azure-vnet.json`): networks and
 * endpoints, versioned, validated on read.
 *
 * Recovery from a corrupt file: the state-file layer copies it aside and
 * fails with code 102 naming the copy; `deno task state teardown` removes the
 * host network, after which the file may be deleted.
 *
 * @module
 */
import * as z from "zod/mini";
import {
  CniError,
  type LockedStateFile,
  PLUGIN_CODES,
  readParsedStateFile,
  type Result,
  updateStateFile,
  withStateLock,
} from "@vnet/cni";
import type { SavedRoute } from "./kernel.ts";

/** The current state format version. */
export const STATE_VERSION = 1;

/** The state file name inside the state directory. */
export const STATE_FILE_NAME = "azure-vnet.json";

/** The modes of a network: how pods reach the VNET (README, azure-vnet). */
export type NetworkMode = "bridge" | "transparent";

/** What every network records, whatever its mode. */
export interface NetworkRecordBase {
  /** The network name (config `name`). */
  name: string;
  /** The mode. */
  mode: NetworkMode;
  /** The master (NIC) name. */
  master: string;
  /** The master's MAC. */
  masterMac: string;
  /** The master's MTU when the network was created. */
  masterMtu: number;
  /** The subnet (CIDR) the pods' addresses come from. */
  subnet: string;
  /** The subnet gateway. */
  gateway: string;
  /** The node's primary IP (first global IPv4 address of the master), if any. */
  primaryIp?: string;
  /** ISO time of creation. */
  createdAt: string;
}

/** The host side of a bridge-mode network: what the first ADD set up. */
export interface BridgeNetworkRecord extends NetworkRecordBase {
  /** Bridge mode. */
  mode: "bridge";
  /** The bridge name. */
  bridge: string;
  /** Global addresses moved from the master to the bridge (CIDRs). */
  savedAddrs: string[];
  /** Routes moved from the master to the bridge. */
  savedRoutes: SavedRoute[];
}

/**
 * The host side of a transparent-mode network: only facts, since the master
 * keeps its addresses and routes; the node routes for its pods.
 */
export interface TransparentNetworkRecord extends NetworkRecordBase {
  /** Transparent (routed) mode. */
  mode: "transparent";
  /**
   * Written by earlier versions: true when this network had turned IPv4
   * forwarding on. Read and kept, never acted on: teardown leaves
   * forwarding on (`transparent_mode.ts`).
   */
  forwardingSet?: boolean;
}

/** The host side of a network, in either mode. */
export type NetworkRecord = BridgeNetworkRecord | TransparentNetworkRecord;

/**
 * Where an endpoint adopted from the Go azure-vnet came from
 * (`acn_state.ts`, #17). The Go plugin kept only the first 8 characters of
 * the container ID, so such a record is matched by this ID, not by its key.
 */
export interface AcnOrigin {
  /** The Go endpoint ID: container ID[:8], `-`, the ifname. */
  endpointId: string;
  /** The Go state file's `Version`, such as `v0.91`. */
  version: string;
}

/** One attachment (container ID + ifname). */
export interface EndpointRecord {
  /** The network name. */
  network: string;
  /** `CNI_CONTAINERID`. */
  containerId: string;
  /** `CNI_IFNAME`. */
  ifName: string;
  /** `CNI_NETNS` at ADD time. */
  netns: string;
  /** The host veth name. */
  hostVeth: string;
  /** The host veth MAC. */
  hostMac: string;
  /** The pod interface MAC. */
  podMac: string;
  /** The MTU of both veth ends. */
  mtu: number;
  /** The pod addresses (CIDR with the subnet prefix). */
  addresses: string[];
  /** Which IPAM route served ADD (`in-process` or `exec`). */
  ipamRoute: "in-process" | "exec";
  /** The ADD result in the internal (1.1.0) shape. */
  result: Result;
  /**
   * Set on an endpoint the Go azure-vnet made (adopted): `containerId` is
   * then `acn:<Go endpoint ID>`, unless the Go file kept the full ID.
   */
  acn?: AcnOrigin;
  /**
   * Bridge mode: true when ADD installed the anti-spoofing rules of the
   * host veth (config `spoofCheck`); DEL removes them and CHECK expects
   * them only then. Absent in records of earlier versions, of adopted
   * endpoints and of ADDs with `spoofCheck: false`, which have none.
   */
  spoofCheck?: boolean;
}

/** The whole file. */
export interface AzureVnetState {
  /** {@link STATE_VERSION}. */
  version: number;
  /** Networks by name. */
  networks: Record<string, NetworkRecord>;
  /** Endpoints by `${containerId}/${ifName}`. */
  endpoints: Record<string, EndpointRecord>;
}

const routeSchema = z.looseObject({ dst: z.string() });
const networkBase = {
  name: z.string(),
  master: z.string(),
  masterMac: z.string(),
  masterMtu: z.number(),
  subnet: z.string(),
  gateway: z.string(),
};
const networkSchema = z.discriminatedUnion("mode", [
  z.looseObject({
    ...networkBase,
    mode: z.literal("bridge"),
    bridge: z.string(),
    savedAddrs: z.array(z.string()),
    savedRoutes: z.array(routeSchema),
  }),
  z.looseObject({
    ...networkBase,
    mode: z.literal("transparent"),
    forwardingSet: z.optional(z.boolean()),
  }),
]);
const endpointSchema = z.looseObject({
  network: z.string(),
  containerId: z.string(),
  ifName: z.string(),
  hostVeth: z.string(),
  podMac: z.string(),
  addresses: z.array(z.string()),
  result: z.looseObject({ cniVersion: z.string() }),
});
const stateSchema = z.looseObject({
  version: z.number(),
  networks: z.record(z.string(), networkSchema),
  endpoints: z.record(z.string(), endpointSchema),
});

/**
 * An empty state document.
 *
 * @returns `{version, networks: {}, endpoints: {}}`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { emptyState } from "./state.ts";
 * assert.deepEqual(emptyState().endpoints, {});
 * ```
 */
export function emptyState(): AzureVnetState {
  return { version: STATE_VERSION, networks: {}, endpoints: {} };
}

/**
 * Validates a parsed state document.
 *
 * @param raw What `LockedStateFile.read()` returned (undefined = empty).
 * @param path The file path, for messages.
 * @returns The state.
 * @throws {CniError} Code 102 when the shape or version is wrong.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseState } from "./state.ts";
 * assert.equal(parseState(undefined, "/x").version, 1);
 * assert.throws(() => parseState({ version: 9 }, "/x"), { name: "CniError", code: 102 });
 * ```
 */
export function parseState(raw: unknown, path: string): AzureVnetState {
  if (raw === undefined) return emptyState();
  const recovery =
    "remove the network with `deno task state teardown`, then delete the file";
  if (
    typeof raw === "object" && raw !== null &&
    typeof (raw as { version?: unknown }).version === "number" &&
    (raw as { version: number }).version !== STATE_VERSION
  ) {
    throw new CniError(
      PLUGIN_CODES.corruptState,
      `State file "${path}" has format version ${
        (raw as { version: number }).version
      }, expected ${STATE_VERSION}; ${recovery}`,
    );
  }
  if (
    typeof raw === "object" && raw !== null &&
    typeof (raw as { Network?: unknown }).Network === "object"
  ) {
    throw new CniError(
      PLUGIN_CODES.corruptState,
      `State file "${path}" was written by the Go azure-vnet; azure-vnet adopts it on its next call, or run \`deno task state adopt\``,
    );
  }
  const parsed = stateSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    const at = first === undefined ? "" : ` at "${first.path.join(".")}"`;
    throw new CniError(
      PLUGIN_CODES.corruptState,
      `State file "${path}" is corrupt (unexpected shape${at}); ${recovery}`,
    );
  }
  return parsed.data as unknown as AzureVnetState;
}

/** The state while its lock is held. */
export interface LockedState {
  /** The current document (mutate, then {@link LockedState.save}). */
  readonly state: AzureVnetState;
  /** Writes the document atomically. */
  save(): Promise<void>;
}

/** Options of {@link withState}. */
export interface WithStateOptions {
  /** Lock wait bound in ms (default: the state-file default, 30 s). */
  lockTimeoutMs?: number;
}

/**
 * Runs `fn` with the locked, parsed state of `<stateDir>/azure-vnet.json`.
 * Hold it for local work only, never across a network call.
 *
 * @param stateDir The state directory (default `/var/run`).
 * @param fn The work.
 * @param options The lock timeout.
 * @returns What `fn` returns.
 * @throws {CniError} 11 on lock timeout, 102 on a corrupt file, 5 on I/O.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { withState } from "./state.ts";
 * const dir = await Deno.makeTempDir();
 * const n = await withState(dir, (s) => Object.keys(s.state.endpoints).length);
 * assert.equal(n, 0);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function withState<T>(
  stateDir: string,
  fn: (locked: LockedState) => Promise<T> | T,
  options: WithStateOptions = {},
): Promise<T> {
  const path = statePath(stateDir);
  return withStateLock(
    path,
    async (file: LockedStateFile) => {
      const state = parseState(await file.read(), path);
      return fn({ state, save: () => file.write(state) });
    },
    options.lockTimeoutMs === undefined ? {} : {
      lockTimeoutMs: options.lockTimeoutMs,
    },
  );
}

/**
 * Changes `<stateDir>/azure-vnet.json` with a synchronous `change` of the
 * locked, parsed state, and writes it. Concurrent calls of one process (the
 * agent) are written together: one lock and one write for all
 * (`updateStateFile` of `@vnet/cni`), each `change` on its own copy, in
 * arrival order. For a plain record edit; work that must hold the lock
 * across kernel calls uses {@link withState}.
 *
 * The state is shared and frozen between reads of the same text (#14: the
 * agent neither parses nor prints all endpoints again for each ADD):
 * `change` gets the document and its `networks` and `endpoints` maps as
 * copies, and puts, replaces or deletes records in them; the records
 * themselves are frozen, and editing one throws.
 *
 * @param stateDir The state directory.
 * @param change Edits the maps in place.
 * @param options The lock timeout.
 * @returns When written.
 * @throws {CniError} 11 on lock timeout, 102 on a corrupt file, 5 on I/O.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readState, updateState } from "./state.ts";
 * const dir = await Deno.makeTempDir();
 * await updateState(dir, (s) => { s.networks = {}; });
 * assert.deepEqual((await readState(dir)).endpoints, {});
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function updateState(
  stateDir: string,
  change: (state: AzureVnetState) => void,
  options: WithStateOptions = {},
): Promise<void> {
  const path = statePath(stateDir);
  return updateStateFile(
    path,
    {
      parse: parseState,
      copy: copyState,
      fn: (state) => {
        change(state);
        return { value: undefined, next: state };
      },
    },
    options.lockTimeoutMs === undefined ? {} : {
      lockTimeoutMs: options.lockTimeoutMs,
    },
  );
}

/**
 * Reads `<stateDir>/azure-vnet.json` WITHOUT its lock: one consistent
 * snapshot (writes are atomic renames), possibly stale by the time it is
 * used. For read-only decisions (is the endpoint recorded, does the network
 * exist); every change goes through {@link withState}, which re-reads under
 * the lock. The state is deep-frozen, and shared with earlier reads of the
 * same text (`readParsedStateFile` of `@vnet/cni`).
 *
 * @param stateDir The state directory.
 * @returns The state (empty when the file is missing), frozen.
 * @throws {CniError} 102 on a corrupt file, 5 on I/O.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readState } from "./state.ts";
 * const dir = await Deno.makeTempDir();
 * assert.deepEqual((await readState(dir)).networks, {});
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function readState(stateDir: string): Promise<AzureVnetState> {
  return readParsedStateFile(statePath(stateDir), parseState);
}

/**
 * What an {@link updateState} change may edit: the document and its two
 * maps, copied; the records stay shared (and frozen).
 */
function copyState(state: AzureVnetState): AzureVnetState {
  return {
    ...state,
    networks: { ...state.networks },
    endpoints: { ...state.endpoints },
  };
}

/**
 * The state file path in a state directory.
 *
 * @param stateDir The directory.
 * @returns `<stateDir>/azure-vnet.json`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { statePath } from "./state.ts";
 * assert.equal(statePath("/var/run"), "/var/run/azure-vnet.json");
 * ```
 */
export function statePath(stateDir: string): string {
  return `${stateDir.replace(/\/+$/, "")}/${STATE_FILE_NAME}`;
}
