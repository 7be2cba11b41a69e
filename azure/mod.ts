/**
 * @vnet/azure: fetch-based clients for the wireserver (NMAgent) and IMDS,
 * with bounded retries and one error class. No SDK: the plugins load this.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { normalizeMac, parseInterfaceInfo } from "@vnet/azure";
 *
 * assert.equal(normalizeMac("00-0D-3A-F9-DC-A6"), "000d3af9dca6");
 * assert.deepEqual(parseInterfaceInfo("<Interfaces/>"), []);
 * ```
 *
 * @module
 */
export type * from "./types.ts";
export { AzureHttpError, type AzureHttpErrorOptions } from "./errors.ts";
export { formatArmMac, normalizeMac } from "./mac.ts";
export {
  type FetchedText,
  type FetchFn,
  fetchText,
  isTransientStatus,
  parseRetryAfter,
  type RetryOptions,
  serviceCodeOf,
} from "./retry.ts";
export {
  getInterfaceInfo,
  type GetInterfaceInfoOptions,
  NMAGENT_URL,
  parseInterfaceInfo,
} from "./nmagent.ts";
export {
  getImdsInstance,
  getImdsInterfaces,
  IMDS_API_VERSION,
  IMDS_URL,
  type ImdsCompute,
  type ImdsInstance,
  type ImdsOptions,
} from "./imds.ts";
