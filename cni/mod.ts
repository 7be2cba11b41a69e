/**
 * @vnet/cni: the CNI protocol library.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { CniError } from "@vnet/cni";
 * assert.equal(new CniError(7, "bad").code, 7);
 * ```
 *
 * @module
 */
export * from "./errors.ts";
export * from "./spec.ts";
export * from "./state_file.ts";
