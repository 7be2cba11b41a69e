/**
 * @vnet/ipam: the azure-vnet-ipam engine. One set of handlers serves both
 * the `azure-vnet-ipam` binary and `azure-vnet`'s in-process fast path.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createIpamHandlers, IPAM_STATE_FILE } from "@vnet/ipam";
 * const handlers = createIpamHandlers({ stateDir: "/tmp" });
 * assert.equal(typeof handlers.cmdGc, "function");
 * assert.equal(IPAM_STATE_FILE, "azure-vnet-ipam.json");
 * ```
 *
 * @module
 */
export {
  createIpamHandlers,
  DEFAULT_STATE_DIR,
  type IpamEngineOptions,
} from "./engine.ts";
export {
  type AddressRecord,
  emptyIpamState,
  IPAM_STATE_FILE,
  IPAM_STATE_VERSION,
  type IpamState,
  parseIpamState,
  type PoolState,
  readIpamState,
} from "./state.ts";
export {
  AZURE_DNS,
  DEFAULT_QUERY_INTERVAL_S,
  type IpamConfig,
  type IpamEnvironment,
  parseIpamConfig,
} from "./config.ts";
export type { HostLink } from "./pool.ts";
export {
  type Allocation,
  type ReleaseOptions,
  reservedBy,
} from "./allocator.ts";
export { FileStore, type FileStoreOptions } from "./file_store.ts";
export type { IpamStore, StoreUpdate } from "./store.ts";
