/**
 * Kernel leftovers of interrupted ADDs (a kill -9 between the veth and the
 * state record): host veths, per-pod ebtables rules and bridge neighbours
 * that no endpoint record accounts for. CNI GC removes them; the state
 * tool's gc reuses the search.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { contains, inSubnet, looksLikeIpv6, stripPrefix } from "@vnet/address";
import type { Ebtables } from "./ebtables.ts";
import {
  canonicalMac,
  type EbtablesRule,
  parsePodRule,
  parseSpoofRule,
  ruleKey,
} from "./ebtables_rules.ts";
import type { KernelNs } from "./kernel.ts";
import { HOST_VETH_PREFIX } from "./names.ts";
import { wrapKernel } from "./errors.ts";
import type { AzureVnetState } from "./state.ts";

const log = getLogger(["azure-vnet", "leftovers"]);

/**
 * How long a caller waits between two looks at leftovers (ms): an ADD in
 * flight has written its record, or its routes, by then.
 */
export const LEFTOVER_GRACE_MS = 2000;

/** What {@link findLeftovers} found. */
export interface Leftovers {
  /**
   * `azv*` host veths with no endpoint record: on a recorded bridge, or
   * (transparent mode) on no bridge, routing the subnet or nothing yet
   * ({@link transparentVethClaim}).
   */
  readonly veths: string[];
  /**
   * Per-pod rules (ARP reply, IPv4 DNAT) for an address of no record, as
   * listed: one written in another form than ours (a foreign target or
   * option) is deleted in the form the listing prints, which ebtables
   * takes back.
   */
  readonly rules: EbtablesRule[];
  /**
   * Permanent IPv4 neighbours on a bridge for an address of no record, with
   * the MAC they named when found.
   */
  readonly neighbours: {
    readonly bridge: string;
    readonly ip: string;
    readonly mac?: string | undefined;
  }[];
}

/** Inputs of {@link findLeftovers}. */
export interface FindLeftoversSpec {
  /** The state (a fresh read: records are what is kept). */
  readonly state: AzureVnetState;
  /** Only this network (default: every recorded network). */
  readonly network?: string;
  /**
   * The `ebtables -t nat -L PREROUTING` rule lines; omit to skip rules.
   */
  readonly prerouting?: readonly string[];
  /**
   * Only what one attachment may have left (a DEL without a record): rules
   * and neighbours for one of `ips` (the addresses the IPAM holds for it),
   * whatever MAC they carry, and those carrying one of `macs` (its pod
   * MACs). Veths are not searched (the caller knows the attachment's own
   * veth name).
   */
  readonly only?: {
    readonly ips: readonly string[];
    readonly macs: readonly string[];
  };
  /**
   * Addresses never to take, whatever MAC: the IPAM holds them for other
   * attachments, whose ADD may have plumbed them and not yet recorded them.
   */
  readonly spare?: ReadonlySet<string>;
}

/**
 * Finds the kernel objects of the selected networks that no endpoint record
 * accounts for:
 *
 * - host veths named `azv*` enslaved to the network's bridge that are no
 *   endpoint's `hostVeth`; for a transparent-mode network, those on no
 *   bridge that route its subnet or nothing yet
 *   ({@link transparentVethClaim}: the caller confirms the latter with a
 *   second look, {@link confirmLeftovers});
 * - per-pod ebtables rules (ARP reply; IPv4 DNAT on the network's master)
 *   whose address lies in the network's subnet and belongs to no recorded
 *   endpoint, nor to `spec.spare`. Host rules never qualify: the SNAT and
 *   the ARP-reply redirect have another shape, and the node's primary IP
 *   is excluded;
 * - the anti-spoofing rules of a host veth that no record names and that is
 *   gone or a leftover itself (see `spoofLeftovers`);
 * - permanent IPv4 neighbours on the bridge, in the subnet, for an address
 *   of no recorded endpoint, nor in `spec.spare` (the node's primary IP and
 *   the gateway excluded). Transparent mode has neither: its per-pod
 *   objects (the `/32` route, proxy ARP) go with the veth.
 *
 * Pure over its inputs: it only reads the kernel.
 *
 * @param host The node's netns.
 * @param spec The state, the network filter, the listed PREROUTING lines.
 * @returns The leftovers.
 *
 * @example Usage
 * ```ts ignore
 * import { Ebtables } from "./ebtables.ts";
 * import { findLeftovers } from "./leftovers.ts";
 * import { netlinkKernel } from "./netlink_kernel.ts";
 * import { readState } from "./state.ts";
 * using host = netlinkKernel().host();
 * const found = findLeftovers(host, {
 *   state: readState("/var/run"),
 *   prerouting: await new Ebtables().list("PREROUTING"),
 * });
 * ```
 */
export function findLeftovers(
  host: KernelNs,
  spec: FindLeftoversSpec,
): Leftovers {
  const { state } = spec;
  const nets = Object.values(state.networks).filter((n) =>
    spec.network === undefined || n.name === spec.network
  );
  const eps = Object.values(state.endpoints);
  const veths = new Set(eps.map((e) => e.hostVeth));
  const recordedIps = new Set(
    eps.flatMap((e) => e.addresses.map((a) => stripPrefix(a))),
  );
  const only = spec.only === undefined ? undefined : {
    ips: new Set(spec.only.ips.map((a) => stripPrefix(a))),
    macs: new Set(spec.only.macs.map(canonicalMac)),
  };
  const spare = spec.spare ?? new Set<string>();
  const found: Leftovers = { veths: [], rules: [], neighbours: [] };
  const links = host.links();
  for (const net of nets) {
    if (net.mode === "transparent") {
      if (only !== undefined) continue;
      for (const l of links) {
        if (
          l.name.startsWith(HOST_VETH_PREFIX) && !veths.has(l.name) &&
          l.masterIndex === undefined &&
          transparentVethClaim(host, { link: l.name, subnet: net.subnet }) !==
            undefined
        ) found.veths.push(l.name);
      }
      continue;
    }
    const bridge = links.find((l) => l.name === net.bridge);
    const foreign = (ip: string, mac: string | undefined): boolean =>
      !looksLikeIpv6(ip) && ip !== net.primaryIp && ip !== net.gateway &&
      !recordedIps.has(ip) && !spare.has(ip) && inSubnet(ip, net.subnet) &&
      (only === undefined || only.ips.has(ip) ||
        (mac !== undefined && only.macs.has(canonicalMac(mac))));
    if (bridge !== undefined) {
      for (const l of only === undefined ? links : []) {
        if (
          l.name.startsWith(HOST_VETH_PREFIX) && !veths.has(l.name) &&
          l.masterIndex === bridge.index
        ) found.veths.push(l.name);
      }
      for (const n of host.neighs(net.bridge)) {
        if (n.permanent && foreign(n.ip, n.mac)) {
          found.neighbours.push({ bridge: net.bridge, ip: n.ip, mac: n.mac });
        }
      }
    }
    for (const line of spec.prerouting ?? []) {
      const args = line.trim().split(/\s+/);
      const r = parsePodRule(args);
      if (r === undefined || !foreign(r.ip, r.mac)) continue;
      if (r.kind === "dnat" && r.master !== net.master) continue;
      found.rules.push({ chain: "PREROUTING", args });
    }
  }
  if (nets.some((n) => n.mode === "bridge")) {
    found.rules.push(...spoofLeftovers(spec.prerouting ?? [], {
      recorded: veths,
      links: new Set(links.map((l) => l.name)),
      leftoverVeths: new Set(found.veths),
      only,
    }));
  }
  return found;
}

/**
 * The anti-spoofing rules (`parseSpoofRule()`) of host veths that no record
 * names, grouped by veth: all of a veth's rules go, once the veth is gone
 * or is itself a leftover; with `only` (a DEL without a record), those of a
 * veth that is gone and one of whose rules names one of its addresses or
 * MACs. The rules name no network: a gone veth's rules are garbage
 * whichever bridge network's GC finds them.
 */
function spoofLeftovers(
  lines: readonly string[],
  spec: {
    recorded: ReadonlySet<string>;
    links: ReadonlySet<string>;
    leftoverVeths: ReadonlySet<string>;
    only: { ips: ReadonlySet<string>; macs: ReadonlySet<string> } | undefined;
  },
): EbtablesRule[] {
  const { only } = spec;
  const groups = new Map<string, { rules: EbtablesRule[]; named: boolean }>();
  for (const line of lines) {
    const args = line.trim().split(/\s+/);
    const r = parseSpoofRule(args);
    if (r === undefined || spec.recorded.has(r.hostVeth)) continue;
    let group = groups.get(r.hostVeth);
    if (group === undefined) {
      group = { rules: [], named: false };
      groups.set(r.hostVeth, group);
    }
    group.rules.push({ chain: "PREROUTING", args });
    group.named ||= only !== undefined &&
      ((r.ip !== undefined && only.ips.has(r.ip)) ||
        (r.mac !== undefined && only.macs.has(r.mac)));
  }
  const out: EbtablesRule[] = [];
  for (const [veth, group] of groups) {
    const gone = !spec.links.has(veth);
    if (
      only === undefined
        ? gone || spec.leftoverVeths.has(veth)
        : gone && group.named
    ) out.push(...group.rules);
  }
  return out;
}

/**
 * How an unrecorded `azv*` veth on no bridge relates to a transparent
 * network:
 *
 * - `"subnet"`: it routes an address of the network's IPv4 subnet (the
 *   pod's `/32`) and no other IPv4 address: an ADD of this network got
 *   that far. The runtime runs no GC beside this network's ADDs.
 * - `"unrouted"`: it routes nothing yet (link-local routes aside). It may
 *   be an ADD of this network killed early, or one of another network
 *   still building it, so a caller takes it only when a second look, some
 *   seconds later ({@link LEFTOVER_GRACE_MS}), finds it again
 *   ({@link confirmLeftovers}).
 * - undefined: it routes something else (another network's pod); or only
 *   IPv6 addresses, whose network cannot be told (an ADD routes IPv4 first).
 *
 * @param host The node's netns.
 * @param spec The veth, the network's IPv4 subnet.
 * @returns The claim, or undefined.
 *
 * @example Usage
 * ```ts ignore
 * transparentVethClaim(host, { link: "azv0123456789a", subnet: "10.0.0.0/24" });
 * ```
 */
export function transparentVethClaim(
  host: KernelNs,
  spec: { link: string; subnet: string },
): "subnet" | "unrouted" | undefined {
  const routed = host.routes(spec.link).filter((r) =>
    !contains("fe80::/10", stripPrefix(r.dst))
  );
  if (routed.length === 0) return "unrouted";
  const v4 = routed.filter((r) => !looksLikeIpv6(r.dst));
  return v4.length > 0 && v4.every((r) => inSubnet(r.dst, spec.subnet))
    ? "subnet"
    : undefined;
}

/**
 * What two looks at leftovers, some time apart, both found: an ADD in
 * flight has since written its record or routed its veth elsewhere.
 *
 * @param first The first look.
 * @param again The second look.
 * @returns What is in both, in the first look's order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { confirmLeftovers } from "./leftovers.ts";
 * const first = { veths: ["azva", "azvb"], rules: [], neighbours: [] };
 * const again = { veths: ["azvb"], rules: [], neighbours: [] };
 * assert.deepEqual(confirmLeftovers(first, again).veths, ["azvb"]);
 * ```
 */
export function confirmLeftovers(
  first: Leftovers,
  again: Leftovers,
): Leftovers {
  const text = (r: EbtablesRule) => `${r.chain} ${ruleKey(r.args)}`;
  const veths = new Set(again.veths);
  const rules = new Set(again.rules.map(text));
  const neighs = new Set(again.neighbours.map((n) => `${n.bridge} ${n.ip}`));
  return {
    veths: first.veths.filter((v) => veths.has(v)),
    rules: first.rules.filter((r) => rules.has(text(r))),
    neighbours: first.neighbours.filter((n) =>
      neighs.has(`${n.bridge} ${n.ip}`)
    ),
  };
}

/**
 * Removes what {@link findLeftovers} found: the veths (each takes its pod
 * end along), the rules (one transaction), the neighbours. Absent objects
 * are fine; independent failures are collected.
 *
 * Requires CAP_NET_ADMIN and the `ebtables` binary.
 *
 * @param ctx The host netns and the ebtables driver.
 * @param leftovers What to remove.
 * @returns The failures (empty on success).
 *
 * @example Usage
 * ```ts ignore
 * const errors = await removeLeftovers({ host, ebtables }, found);
 * ```
 */
export async function removeLeftovers(
  ctx: { host: KernelNs; ebtables: Ebtables },
  leftovers: Leftovers,
): Promise<unknown[]> {
  const { host, ebtables } = ctx;
  const errors: unknown[] = [];
  for (const v of leftovers.veths) {
    try {
      host.delLinkSync(v);
    } catch (err) {
      errors.push(wrapKernel(`Cannot delete veth "${v}"`, err));
    }
  }
  if (leftovers.rules.length > 0) {
    try {
      await ebtables.removeAll(leftovers.rules);
    } catch (err) {
      errors.push(err);
    }
  }
  for (const n of leftovers.neighbours) {
    try {
      host.neighDel(n.bridge, n.ip);
    } catch (err) {
      errors.push(wrapKernel(`Cannot delete neighbour "${n.ip}"`, err));
    }
  }
  const total = leftovers.veths.length + leftovers.rules.length +
    leftovers.neighbours.length;
  if (total > 0) {
    log.info(
      "Removed leftovers: veths {veths}, {rules} rules, neighbours {neighbours}",
      {
        veths: leftovers.veths,
        rules: leftovers.rules.length,
        neighbours: leftovers.neighbours.map((n) => n.ip),
      },
    );
  }
  return errors;
}
