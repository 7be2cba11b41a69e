/**
 * @vnet/azure-vnet: the `azure-vnet` plugin. Its public door for tools
 * (the teardown and state tools, the agent) and tests: the verbs over a
 * context and their handler factory, teardown, the reconcile with the
 * kernel, state model, the endpoint removal that DEL uses, the kernel port
 * and the ebtables driver.
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
export { type AzureVnetConfig, parseConfig } from "./config.ts";
export {
  type AzureVnetState,
  emptyState,
  type EndpointRecord,
  type LockedState,
  type NetworkRecord,
  parseState,
  type SavedRoute,
  STATE_FILE_NAME,
  STATE_VERSION,
  statePath,
  withState,
} from "./state.ts";
export { endpointKey, HOST_VETH_PREFIX, hostVethName } from "./names.ts";
export {
  deleteEndpoint,
  type DeleteEndpointSpec,
  type EndpointContext,
  podRules,
} from "./endpoint.ts";
export {
  Ebtables,
  type EbtablesOptions,
  type EbtablesOutput,
  type EbtablesRule,
  type EbtablesRunner,
  normalizeMac,
  podDnatRule,
} from "./ebtables.ts";
export {
  findLeftovers,
  type FindLeftoversSpec,
  type Leftovers,
  removeLeftovers,
} from "./leftovers.ts";
export {
  type ListedPodRule,
  parsePodDnatRules,
  parsePodRule,
  type PodDnat,
  podRuleOf,
} from "./pod_rules.ts";
export type {
  AddrState,
  Kernel,
  KernelNs,
  LinkState,
  NeighState,
  RouteState,
} from "./kernel.ts";
export { netlinkKernel } from "./netlink_kernel.ts";
export { hostRules } from "./network.ts";
export {
  type ReconcileAction,
  type ReconcileOptions,
  type ReconcileReport,
  reconcileState,
} from "./reconcile.ts";
export {
  readState,
  teardown,
  type TeardownOptions,
  type TeardownReport,
} from "./teardown.ts";
