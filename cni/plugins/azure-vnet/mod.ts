/**
 * The `azure-vnet` plugin's public door for tools (the teardown and state
 * tools): handler factory, teardown, state model and ebtables rule builders.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointKey, statePath } from "./mod.ts";
 * assert.equal(endpointKey("c1", "eth0"), "c1/eth0");
 * assert.equal(statePath("/var/run"), "/var/run/azure-vnet.json");
 * ```
 *
 * @module
 */
export {
  type AzureVnetOptions,
  createAzureVnetHandlers,
  DEFAULT_STATE_DIR,
} from "./azure_vnet.ts";
export { type AzureVnetConfig, parseConfig } from "./config.ts";
export {
  type AzureVnetState,
  type EndpointRecord,
  type NetworkRecord,
  type SavedRoute,
  STATE_FILE_NAME,
  STATE_VERSION,
  statePath,
} from "./state.ts";
export { endpointKey, hostVethName } from "./names.ts";
export {
  readState,
  teardown,
  type TeardownOptions,
  type TeardownReport,
} from "./teardown.ts";
