/**
 * @vnet/azure: fetch-based clients for the wireserver (NMAgent) and IMDS.
 *
 * @module
 */
export type * from "./types.ts";
