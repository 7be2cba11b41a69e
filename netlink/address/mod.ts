/**
 * @vnet/address: pure IPv4, IPv6 and MAC address arithmetic, the one
 * implementation every member uses. No FFI and no other member.
 *
 * - Addresses ({@link parseIpv4}, {@link normalizeIp}, {@link ipFamily}…) and
 *   CIDR text of either family ({@link parseCidr}, {@link network},
 *   {@link contains}, {@link inSubnet}…).
 * - IPv4 subnets as numbers for allocators ({@link parseIpv4Cidr},
 *   {@link ipv4Gateway}, {@link ipv4Broadcast}…).
 * - MACs in the kernel form ({@link kernelMac}, `00:0d:3a:f9:dc:a6`), the
 *   Azure/IPAM form ({@link azureMac}, `000d3af9dca6`) and the ARM form
 *   ({@link armMac}, `00-0D-3A-F9-DC-A6`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { azureMac, contains, kernelMac, networkOf } from "@vnet/address";
 *
 * assert.equal(networkOf("10.240.3.7/16"), "10.240.0.0/16");
 * assert.ok(contains("10.240.0.0/16", "10.240.3.7"));
 * assert.equal(kernelMac("000D3AF9DCA6"), "00:0d:3a:f9:dc:a6");
 * assert.equal(azureMac("00:0d:3a:f9:dc:a6"), "000d3af9dca6");
 * ```
 *
 * @module
 */
export * from "./ip.ts";
export * from "./cidr.ts";
export * from "./ipv4_cidr.ts";
export * from "./mac.ts";
