/**
 * @vnet/azure-vnet: the `azure-vnet` plugin. Its public door, narrowed to
 * what the entry point, the tools (state, teardown, GC, repair) and the
 * agent use: the verbs over a context and their handler factory, teardown,
 * the state model, the endpoint removal that DEL uses, the leftover search,
 * the reconcile with the kernel, the network read back from the kernel, the kernel port, and the ebtables
 * driver with the DNAT-rule parser. Everything else is private.
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
export { createAzureVnetHandlers } from "./azure_vnet.ts";
export {
  acnStatePresent,
  adoptAcnState,
  type AdoptOptions,
  type AdoptOutcome,
} from "./adopt.ts";
export {
  ACN_BACKUP_SUFFIX,
  type AcnLinkFact,
  type AdoptionReport,
} from "./acn_state.ts";
export { cmdAdd } from "./cmd_add.ts";
export { cmdCheck } from "./cmd_check.ts";
export { cmdDel } from "./cmd_del.ts";
export { cmdGc } from "./cmd_gc.ts";
export { cmdStatus } from "./cmd_status.ts";
export {
  type AzureVnetContext,
  type AzureVnetOptions,
  createContext,
  DEFAULT_STATE_DIR,
} from "./context.ts";
export type { IpamRoute } from "./ipam_route.ts";
export { ipamDelegateOf } from "./ipam_route.ts";
export type { AzureVnetConfig } from "./config.ts";
export {
  type AzureVnetState,
  type BridgeNetworkRecord,
  emptyState,
  type EndpointRecord,
  type LockedState,
  type NetworkMode,
  type NetworkRecord,
  parseState,
  STATE_FILE_NAME,
  statePath,
  type TransparentNetworkRecord,
  withState,
} from "./state.ts";
export { endpointKey, HOST_VETH_PREFIX, hostVethName } from "./names.ts";
export type { DeleteEndpointSpec, EndpointContext } from "./endpoint.ts";
export { deleteEndpoint, type ModeDriver, modeDriver } from "./mode.ts";
export {
  Ebtables,
  EBTABLES_DIRS,
  type EbtablesOptions,
  type EbtablesOutput,
  type EbtablesRunner,
} from "./ebtables.ts";
export {
  type EbtablesRule,
  type ListedSpoofRule,
  parsePodDnatRules,
  parseSpoofRule,
  type PodDnat,
} from "./ebtables_rules.ts";
export {
  findLeftovers,
  type FindLeftoversSpec,
  type Leftovers,
} from "./leftovers.ts";
export type {
  AddrState,
  Kernel,
  KernelNs,
  LinkState,
  NeighState,
  RouteState,
  SavedRoute,
} from "./kernel.ts";
export { netlinkKernel } from "./netlink_kernel.ts";
export { networkFromKernel, type NetworkFromKernelSpec } from "./network.ts";
export {
  type ReconcileAction,
  type ReconcileOptions,
  type ReconcileReport,
  reconcileState,
} from "./reconcile.ts";
export {
  transparentNetworkFromKernel,
  transparentRoutes,
  type TransparentVeth,
} from "./transparent_mode.ts";
export {
  readState,
  teardown,
  type TeardownOptions,
  type TeardownReport,
} from "./teardown.ts";
