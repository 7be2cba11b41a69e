/**
 * @vnet/forward: the thin plugins' forwarder and the wire format they share
 * with `azure-vnet-agent` (#14). It imports nothing (no npm package, no
 * other member), so a plugin's entry point that loads only this starts
 * cheaply; the full plugin is imported only when no agent answers.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { agentSocketPath, MAX_REQUEST_BYTES } from "@vnet/forward";
 * assert.equal(agentSocketPath({}), "/var/run/azure-vnet-agent.sock");
 * assert.equal(MAX_REQUEST_BYTES, 1024 * 1024);
 * ```
 *
 * @module
 */
export * from "./frame.ts";
export * from "./forward.ts";
