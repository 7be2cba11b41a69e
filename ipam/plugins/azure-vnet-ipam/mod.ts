/**
 * The `azure-vnet-ipam` CNI IPAM plugin: the CNI handlers over the
 * `@vnet/ipam` engine. Its entry point is `main.ts`.
 *
 * @module
 */
export { createIpamHandlers } from "@vnet/ipam";
