/**
 * @vnet/cni: the CNI protocol library: wire types, version negotiation and
 * result conversion, `CNI_ARGS` and config parsing, the plugin dispatcher
 * (skel), exec of delegated plugins, the locked state file and log setup.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { CniError, convertResult } from "@vnet/cni";
 * assert.equal(new CniError(7, "bad").code, 7);
 * const r = { cniVersion: "1.1.0", ips: [{ address: "10.0.0.5/24" }] };
 * assert.deepEqual(convertResult(r, "0.4.0").ips, [
 *   { version: "4", address: "10.0.0.5/24" },
 * ]);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./spec.ts";
export * from "./state_file.ts";
export * from "./state_batch.ts";
export * from "./frozen_json.ts";
export * from "./version.ts";
export * from "./args.ts";
export * from "./config.ts";
export * from "./dns.ts";
export * from "./skel.ts";
export * from "./invoke.ts";
export * from "./logging.ts";
export * from "./redact.ts";
