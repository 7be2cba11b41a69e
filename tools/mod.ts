/**
 * @vnet/tools.
 *
 * @module
 */
export {};
