/**
 * @vnet/azure-vnet-ipam: the `azure-vnet-ipam` CNI IPAM plugin, a thin
 * wrapper of CNI verbs over the `@vnet/ipam` engine. Its entry point is
 * `main.ts`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createIpamHandlers } from "@vnet/azure-vnet-ipam";
 * assert.equal(typeof createIpamHandlers().cmdGc, "function");
 * ```
 *
 * @module
 */
export {
  cmdAdd,
  cmdCheck,
  cmdDel,
  cmdGc,
  cmdStatus,
  createIpamHandlers,
  type IpamContext,
} from "./handlers.ts";
