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
  type ServedPlugin,
} from "./server.ts";
