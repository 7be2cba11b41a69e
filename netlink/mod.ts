/**
 * @vnet/netlink.
 *
 * @module
 */
export {};
