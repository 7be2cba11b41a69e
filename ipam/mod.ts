/**
 * @vnet/ipam: the azure-vnet-ipam engine. Its typed calls (`reserve`,
 * `release`, `held`, `collect`, `status`) serve the `azure-vnet-ipam` CNI
 * handlers, `azure-vnet`'s in-process route and the state tool.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { IPAM_STATE_FILE, IpamEngine } from "@vnet/ipam";
 * const engine = new IpamEngine({ stateDir: "/tmp" });
 * assert.equal(typeof engine.reserve, "function");
 * assert.equal(IPAM_STATE_FILE, "azure-vnet-ipam.json");
 * ```
 *
 * @module
 */
export {
  DEFAULT_STATE_DIR,
  IpamEngine,
  type IpamEngineOptions,
  type NetworkScope,
  type PoolStatus,
  type Reservation,
  type ReserveRequest,
} from "./engine.ts";
export {
  attachmentKeyOf,
  ipamResult,
  networkNameOf,
  podOf,
  requestedIpOf,
  requireFreeAddress,
  requireHeld,
} from "./cni_request.ts";
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
  DEFAULT_STICKY_COOLDOWN_S,
  type IpamConfig,
  type IpamEnvironment,
  parseIpamConfig,
} from "./config.ts";
export type { HostLink, NicSync } from "./pool.ts";
export {
  type Allocation,
  type AttachmentKey,
  type ReleaseOptions,
  reservedBy,
} from "./allocator.ts";
export { FileStore, type FileStoreOptions } from "./file_store.ts";
export type { IpamStore, StoreUpdate } from "./store.ts";
