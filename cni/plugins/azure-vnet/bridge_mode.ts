/**
 * Bridge mode as a {@link ModeDriver}: the master NIC on a Linux bridge that
 * took over its addresses and routes, ebtables MAC rewriting, pods on the
 * bridge. The work itself lives in `network.ts`, `endpoint.ts` and
 * `leftovers.ts`; this file maps the driver's calls onto it.
 *
 * @module
 */
import { CniError, CODES } from "@vnet/cni";
import { looksLikeIpv6, stripPrefix } from "@vnet/address";
import {
  createBridgeEndpoint,
  deleteBridgeEndpoint,
  podRules,
} from "./endpoint.ts";
import { findLeftovers, removeLeftovers } from "./leftovers.ts";
import type { ModeDriver } from "./mode.ts";
import { createNetwork, hostRules, teardownNetwork } from "./network.ts";
import { checkPodEnd } from "./pod_end.ts";
import type { BridgeNetworkRecord, NetworkRecord } from "./state.ts";

/**
 * The record as a bridge-mode one.
 *
 * @param net A network record.
 * @returns The same record, typed.
 * @throws {TypeError} When it is of another mode.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { asBridge } from "./bridge_mode.ts";
 * assert.throws(
 *   () => asBridge({ mode: "transparent", name: "t" } as never),
 *   { name: "TypeError", message: /"t" as a bridge: it is in transparent/ },
 * );
 * ```
 */
export function asBridge(net: NetworkRecord): BridgeNetworkRecord {
  if (net.mode !== "bridge") {
    throw new TypeError(
      `Cannot use network "${net.name}" as a bridge: it is in ${net.mode} mode`,
    );
  }
  return net;
}

/** The driver of bridge mode. */
export const BRIDGE_MODE: ModeDriver = {
  mode: "bridge",

  refuseAddresses(ips) {
    const v6 = ips.find((ip) => looksLikeIpv6(ip.address));
    if (v6 === undefined) return;
    throw new CniError(
      CODES.invalidConfig,
      `Cannot attach IPv6 address "${v6.address}" in bridge mode: bridge mode is IPv4 only; use "mode": "transparent" for IPv6 (dual-stack)`,
      {
        details:
          "The IPAM has an IPv6 pool (the NIC has IPv6 ip configurations, or ipam.ipv6Subnet is set)",
      },
    );
  },

  lost(host, net) {
    const { bridge } = asBridge(net);
    return host.link(bridge) === undefined
      ? `bridge "${bridge}" is gone`
      : undefined;
  },

  statusProblem(host, record) {
    const net = asBridge(record);
    const bridge = host.link(net.bridge);
    const master = host.link(net.master);
    if (bridge !== undefined && master?.masterIndex === bridge.index) {
      return undefined;
    }
    return `bridge "${net.bridge}" ${
      bridge === undefined
        ? "is missing"
        : `does not hold master "${net.master}"`
    }`;
  },

  hostRules(net) {
    return hostRules(asBridge(net));
  },

  createNetwork(ctx, spec) {
    return createNetwork(ctx, spec);
  },

  async teardownNetwork(ctx, spec) {
    await teardownNetwork(ctx, asBridge(spec.net));
    return [];
  },

  createEndpoint(ctx, spec) {
    return createBridgeEndpoint(ctx, {
      ...spec,
      network: asBridge(spec.network),
    });
  },

  deleteEndpoint(ctx, spec) {
    return deleteBridgeEndpoint(ctx, {
      ...spec,
      network: spec.network === undefined ? undefined : asBridge(spec.network),
    });
  },

  async checkEndpoint(ctx, spec) {
    const { ep } = spec;
    const net = asBridge(spec.net);
    const problems: string[] = [];
    {
      using host = ctx.kernel.host();
      const bridge = host.link(net.bridge);
      if (bridge === undefined) problems.push(`bridge "${net.bridge}" missing`);
      const veth = host.link(ep.hostVeth);
      if (veth === undefined) {
        problems.push(`host veth "${ep.hostVeth}" missing`);
      } else {
        if (bridge !== undefined && veth.masterIndex !== bridge.index) {
          problems.push(`host veth "${ep.hostVeth}" not on "${net.bridge}"`);
        }
        if (!veth.up) problems.push(`host veth "${ep.hostVeth}" is down`);
      }
      // The Go azure-vnet (v0.91) set no bridge neighbour for its pods: an
      // adopted endpoint has none to check (#17).
      for (const cidr of ep.acn === undefined ? ep.addresses : []) {
        const ip = stripPrefix(cidr);
        const mac = host.neighMac(net.bridge, ip);
        if (mac !== ep.podMac) {
          problems.push(
            `neighbour "${ip}" on "${net.bridge}" is ${mac ?? "missing"}`,
          );
        }
      }
    }
    problems.push(...checkPodEnd(ctx.kernel, { ep, netns: spec.netns }));
    const rules = [
      ...spec.scope === "endpoint" ? [] : hostRules(net),
      ...podRules(net.master, ep),
    ];
    for (const rule of await ctx.ebtables.missing(rules)) {
      problems.push(
        `ebtables rule missing: ${rule.chain} ${rule.args.join(" ")}`,
      );
    }
    return problems;
  },

  async leftovers(ctx, spec) {
    return findLeftovers(ctx.host, {
      ...spec,
      prerouting: await ctx.ebtables.list("PREROUTING"),
    });
  },

  async removeTraces(ctx, traces) {
    const { host, ebtables } = ctx;
    const { held, macs } = traces;
    if (held.length === 0 && macs.length === 0) {
      return { errors: [], evidence: false };
    }
    // Listing the rules costs an exec: only when something says they may
    // exist (a veth or a reservation of this attachment, or a neighbour
    // with its MAC).
    const search = {
      state: traces.state,
      network: traces.net.name,
      only: { ips: held, macs },
      spare: traces.spare,
    };
    const evidence = traces.podAttached || held.length > 0 ||
      findLeftovers(host, search).neighbours.length > 0;
    if (!evidence) return { errors: [], evidence };
    const errors: unknown[] = [];
    try {
      const found = findLeftovers(host, {
        ...search,
        prerouting: await ebtables.list("PREROUTING"),
      });
      errors.push(...await removeLeftovers({ host, ebtables }, found));
    } catch (err) {
      errors.push(err);
    }
    return { errors, evidence };
  },
};
