/**
 * @vnet/azure: fetch-based clients for the wireserver (NMAgent) and IMDS,
 * with bounded retries and one error class, never through a proxy. No SDK:
 * the plugins load this.
 * MACs come out in the Azure form of `@vnet/address` (`azureMac`,
 * `000d3af9dca6`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseInterfaceInfo } from "@vnet/azure";
 *
 * const xml = '<Interfaces><Interface MacAddress="000D3AF9DCA6" IsPrimary="true"/></Interfaces>';
 * assert.equal(parseInterfaceInfo(xml)[0]?.macAddress, "000d3af9dca6");
 * assert.deepEqual(parseInterfaceInfo("<Interfaces/>"), []);
 * ```
 *
 * @module
 */
export type * from "./types.ts";
export { AzureHttpError, type AzureHttpErrorOptions } from "./errors.ts";
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
  isTransientImdsStatus,
} from "./imds.ts";
