/**
 * How a CNI invocation maps onto {@link IpamEngine} calls, shared by the
 * `azure-vnet-ipam` handlers and `azure-vnet`'s in-process route: the
 * attachment key, the network, the requested address, and the IPAM result.
 *
 * @module
 */
import { CniError, CODES, PLUGIN_CODES } from "@vnet/cni";
import type { CmdArgs, Dns, Result } from "@vnet/cni";
import {
  isIpv4,
  looksLikeIpv6,
  parseCidr,
  parseIpv4Cidr,
  stripPrefix,
} from "@vnet/address";
import type { AttachmentKey } from "./allocator.ts";
import type { IpamConfig } from "./config.ts";
import type { PoolStatus, Reservation } from "./engine.ts";

/**
 * The attachment a CNI invocation names.
 *
 * @param args The invocation.
 * @returns Container id and ifname.
 * @throws {CniError} Code 4 when `CNI_CONTAINERID` is empty.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { attachmentKeyOf } from "./cni_request.ts";
 * assert.deepEqual(
 *   attachmentKeyOf({ containerId: "c1", ifName: "eth0" }),
 *   { containerId: "c1", ifName: "eth0" },
 * );
 * ```
 */
export function attachmentKeyOf(
  args: Pick<CmdArgs, "containerId" | "ifName">,
): AttachmentKey {
  if (args.containerId === "") {
    throw new CniError(
      CODES.invalidEnvironment,
      "Missing CNI_CONTAINERID: it keys the address reservation",
    );
  }
  return { containerId: args.containerId, ifName: args.ifName };
}

/**
 * The network name recorded with reservations: the config's `name`.
 *
 * @param args The invocation.
 * @returns The name, or undefined when unset.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { networkNameOf } from "./cni_request.ts";
 * const config = { cniVersion: "1.1.0", name: "azure", type: "t" };
 * assert.equal(networkNameOf({ config }), "azure");
 * ```
 */
export function networkNameOf(
  args: Pick<CmdArgs, "config">,
): string | undefined {
  const name: unknown = args.config.name;
  return typeof name === "string" && name !== "" ? name : undefined;
}

/**
 * The pod a CNI invocation is for, `namespace/name`, from `CNI_ARGS`
 * (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`): the identity sticky addresses are
 * remembered for (#16).
 *
 * @param args The invocation.
 * @returns `namespace/name`, or undefined without `K8S_POD_NAME`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCniArgs } from "@vnet/cni";
 * import { podOf } from "./cni_request.ts";
 * const args = parseCniArgs("K8S_POD_NAMESPACE=db;K8S_POD_NAME=pg-0");
 * assert.equal(podOf({ args }), "db/pg-0");
 * assert.equal(podOf({ args: parseCniArgs("") }), undefined);
 * ```
 */
export function podOf(args: Pick<CmdArgs, "args">): string | undefined {
  const name = args.args.podName;
  if (name === undefined || name === "") return undefined;
  return `${args.args.podNamespace ?? ""}/${name}`;
}

/**
 * The first IPv4 address requested by `CNI_ARGS` (`IP=`), `runtimeConfig.ips`,
 * `args.cni.ips` or `ipam.ipAddress`, in that order.
 *
 * @param args The invocation.
 * @param config The validated `ipam` section.
 * @returns The dotted quad, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CmdArgs, parseCniArgs } from "@vnet/cni";
 * import { requestedIpOf } from "./cni_request.ts";
 * const args = { args: parseCniArgs("IP=10.0.0.9"),
 *   config: { cniVersion: "1.1.0", name: "n", type: "t" } } as CmdArgs;
 * assert.equal(requestedIpOf(args, {}), "10.0.0.9");
 * ```
 */
export function requestedIpOf(
  args: Pick<CmdArgs, "args" | "config">,
  config: Pick<IpamConfig, "ipAddress">,
): string | undefined {
  const conf = args.config;
  const cniArgs = (conf.args as { cni?: { ips?: unknown } } | undefined)?.cni;
  const candidates: unknown[] = [
    ...args.args.ips,
    ...(Array.isArray(conf.runtimeConfig?.ips) ? conf.runtimeConfig.ips : []),
    ...(Array.isArray(cniArgs?.ips) ? cniArgs.ips : []),
    config.ipAddress,
  ];
  for (const c of candidates) {
    if (typeof c === "string" && isIpv4(stripPrefix(c))) return stripPrefix(c);
  }
  return undefined;
}

/**
 * The IPAM result of a reservation: its address with the subnet's prefix,
 * the gateway, a default route, and the configured DNS; with an IPv6
 * reservation (dual-stack) also that address, its gateway and `::/0`.
 *
 * @param reservation What the engine reserved.
 * @param options The `cniVersion` to stamp and the DNS to copy.
 * @returns The abbreviated IPAM result.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipamResult } from "./cni_request.ts";
 * const r = ipamResult(
 *   { ip: "10.0.0.5", subnet: "10.0.0.0/24", gateway: "10.0.0.1" },
 *   { cniVersion: "1.1.0" },
 * );
 * assert.equal(r.ips?.[0]?.address, "10.0.0.5/24");
 * const dual = ipamResult({
 *   ip: "10.0.0.5", subnet: "10.0.0.0/24", gateway: "10.0.0.1",
 *   ipv6: { ip: "fd00::5", subnet: "fd00::/64", gateway: "fd00::1" },
 * }, { cniVersion: "1.1.0" });
 * assert.deepEqual(dual.ips?.[1], { address: "fd00::5/64", gateway: "fd00::1" });
 * assert.deepEqual(dual.routes?.[1], { dst: "::/0", gw: "fd00::1" });
 * ```
 */
export function ipamResult(
  reservation: Reservation,
  options: { cniVersion: string; dns?: Dns | undefined },
): Result {
  const prefix = parseIpv4Cidr(reservation.subnet).prefixLength;
  const result: Result = {
    cniVersion: options.cniVersion,
    ips: [{
      address: `${reservation.ip}/${prefix}`,
      gateway: reservation.gateway,
    }],
    routes: [{ dst: "0.0.0.0/0", gw: reservation.gateway }],
  };
  const v6 = reservation.ipv6;
  if (v6 !== undefined) {
    result.ips?.push({
      address: `${v6.ip}/${parseCidr(v6.subnet).prefix}`,
      gateway: v6.gateway,
    });
    result.routes?.push({ dst: "::/0", gw: v6.gateway });
  }
  if (options.dns !== undefined) result.dns = structuredClone(options.dns);
  return result;
}

/**
 * Refuses pools with no free address (STATUS: the plugin cannot serve an
 * ADD now).
 *
 * @param pools What {@link IpamEngine.status} reported.
 * @throws {CniError} Code 50 naming each pool's usage.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireFreeAddress } from "./cni_request.ts";
 * assert.throws(() => requireFreeAddress([]), { code: 50 });
 * requireFreeAddress([{ subnet: "10.0.0.0/24", total: 4, used: 1, free: 2 }]);
 * assert.throws(() => requireFreeAddress([
 *   { subnet: "10.0.0.0/24", total: 4, used: 1, free: 2 },
 *   { subnet: "fd00::/64", total: 1, used: 1, free: 0 },
 * ]), { code: 50 });
 * ```
 */
export function requireFreeAddress(pools: readonly PoolStatus[]): void {
  // An ADD takes one address of each family the pools have.
  const families = new Set(pools.map((p) => looksLikeIpv6(p.subnet)));
  const served = [...families].every((six) =>
    pools.some((p) => looksLikeIpv6(p.subnet) === six && p.free > 0)
  );
  if (pools.length > 0 && served) return;
  throw new CniError(
    CODES.notAvailable,
    `No free address in ${
      pools.length === 0
        ? "any address pool (none known)"
        : pools.map((p) => `subnet ${p.subnet}: ${p.used} of ${p.total} in use`)
          .join("; ")
    }`,
  );
}

/**
 * Refuses a CHECK whose attachment holds no address, or one (of either
 * family) that `prevResult` does not list.
 *
 * @param held What the attachment holds, or undefined.
 * @param check The attachment and the runtime's `prevResult`.
 * @throws {CniError} Code 106.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { requireHeld } from "./cni_request.ts";
 * const key = { containerId: "c1", ifName: "eth0" };
 * const prevResult = { ips: [{ address: "10.0.0.5/24" }] };
 * const held = { ip: "10.0.0.5", subnet: "10.0.0.0/24", gateway: "10.0.0.1" };
 * requireHeld(held, { key, prevResult });
 * assert.throws(() => requireHeld(undefined, { key, prevResult }), { code: 106 });
 * const ipv6 = { ip: "fd00::5", subnet: "fd00::/64", gateway: "fd00::1" };
 * assert.throws(
 *   () => requireHeld({ ...held, ipv6 }, { key, prevResult }),
 *   { code: 106, message: /"fd00::5" .* is not in prevResult/ },
 * );
 * ```
 */
export function requireHeld(
  held: Reservation | undefined,
  check: { key: AttachmentKey; prevResult: unknown },
): void {
  const { key } = check;
  if (held === undefined) {
    throw new CniError(
      PLUGIN_CODES.checkFailed,
      `No address reserved for container "${key.containerId}" interface "${key.ifName}"`,
    );
  }
  const prev = check.prevResult as { ips?: unknown } | undefined;
  if (!Array.isArray(prev?.ips)) return;
  const ips = prev.ips;
  for (const heldIp of [held.ip, held.ipv6?.ip]) {
    if (heldIp === undefined) continue;
    const listed = ips.some((e: unknown) => {
      const address = (e as { address?: unknown } | null)?.address;
      return typeof address === "string" && stripPrefix(address) === heldIp;
    });
    if (!listed) {
      throw new CniError(
        PLUGIN_CODES.checkFailed,
        `Reserved address "${heldIp}" of container "${key.containerId}" is not in prevResult`,
      );
    }
  }
}
