/**
 * Deterministic names and keys: host veth names and state keys.
 *
 * @module
 */

/** The prefix of every host veth this plugin creates. */
export const HOST_VETH_PREFIX = "azv";

/**
 * The host-side veth name of an attachment: `azv` + the first 11 hex digits
 * of SHA-256 over `network`, `containerId` and `ifName` (joined with NUL
 * bytes so that no two inputs share a preimage). Always 14 characters, so it
 * fits the kernel's 15-byte limit, and computable without state (DEL).
 *
 * @param network The network name.
 * @param attachment The container ID and interface name.
 * @returns The name, for example `azv3f2a9c1b07e`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostVethName } from "./names.ts";
 * const name = await hostVethName("azure", { containerId: "c1", ifName: "eth0" });
 * assert.match(name, /^azv[0-9a-f]{11}$/);
 * ```
 */
export async function hostVethName(
  network: string,
  attachment: { containerId: string; ifName: string },
): Promise<string> {
  const data = new TextEncoder().encode(
    `${network}\0${attachment.containerId}\0${attachment.ifName}`,
  );
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  const hex = Array.from(
    digest.subarray(0, 6),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `${HOST_VETH_PREFIX}${hex.slice(0, 11)}`;
}

/**
 * The state key of an endpoint: `${containerId}/${ifName}`. The full
 * container ID is kept (no truncation).
 *
 * @param containerId `CNI_CONTAINERID`.
 * @param ifName `CNI_IFNAME`.
 * @returns The key.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { endpointKey } from "./names.ts";
 * assert.equal(endpointKey("abc", "eth0"), "abc/eth0");
 * ```
 */
export function endpointKey(containerId: string, ifName: string): string {
  return `${containerId}/${ifName}`;
}
