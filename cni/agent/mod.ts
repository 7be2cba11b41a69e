/**
 * @vnet/azure-vnet-agent: the node agent (#14), a long-running process that
 * answers the thin plugins' forwarded CNI calls with the same handlers and
 * `runPlugin()` as the in-process path, one context (libnl bound once) per
 * process. Its entry point is `main.ts` (`deno task agent`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AgentServer } from "@vnet/azure-vnet-agent";
 * assert.equal(typeof AgentServer.listen, "function");
 * ```
 *
 * @module
 */
export {
  AgentServer,
  type AgentServerOptions,
  type HandBack,
  type ServedPlugin,
  type ServedRequest,
} from "./server.ts";
export {
  type AgentConfig,
  AgentConfigError,
  DEFAULT_AGENT_CONFIG_PATH,
  DEFAULT_ARM_ENDPOINT,
  DEFAULT_IMDS_URL,
  DEFAULT_METRICS_ADDRESS,
  loadAgentConfig,
  parseAgentConfig,
  type WarmPoolSettings,
} from "./config.ts";
export { AgentMetrics, countAddresses } from "./metrics.ts";
export {
  type NodeServices,
  type NodeServicesOptions,
  startNodeServices,
} from "./services.ts";
export {
  type ArmObserver,
  type WarmPass,
  WarmPool,
  type WarmPoolOptions,
  withScaleUpWait,
} from "./warm_pool.ts";
