/**
 * @vnet/ipam.
 *
 * @module
 */
export {};
