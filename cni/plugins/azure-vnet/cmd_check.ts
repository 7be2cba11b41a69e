/**
 * `azure-vnet` CHECK: the kernel, ebtables and IPAM still hold what ADD
 * made.
 *
 * @module
 */
import {
  type CmdArgs,
  CniError,
  flattenCause,
  parseResult,
  PLUGIN_CODES,
} from "@vnet/cni";
import { stripPrefix } from "@vnet/address";
import { type AzureVnetContext, beginInvocation } from "./context.ts";
import type { Ebtables } from "./ebtables.ts";
import { podRules } from "./endpoint.ts";
import type { Kernel, KernelNs } from "./kernel.ts";
import { hostRules } from "./network.ts";
import { checkPodNetns } from "./pod_end.ts";
import { findAttachment } from "./acn_state.ts";
import { ipamArgsOf } from "./adopt.ts";
import type { EndpointRecord, NetworkRecord } from "./state.ts";
import { readState } from "./state.ts";

/** Inputs of {@link checkEndpoint}. */
interface CheckSpec {
  readonly ep: EndpointRecord;
  readonly net: NetworkRecord;
  readonly netns: string;
  readonly prev: Record<string, unknown> | undefined;
}

/**
 * Compares the kernel and ebtables with the recorded endpoint (and the
 * prevResult, when given).
 *
 * @returns One line per problem (empty when all is in place).
 */
async function checkEndpoint(
  kernel: Kernel,
  ebtables: Ebtables,
  spec: CheckSpec,
): Promise<string[]> {
  const { ep, net } = spec;
  const problems: string[] = [];
  if (spec.prev !== undefined) {
    try {
      const prev = parseResult(spec.prev);
      const want = new Set((prev.ips ?? []).map((ip) => ip.address));
      for (const a of ep.addresses) {
        if (!want.has(a)) {
          problems.push(`address "${a}" is not in prevResult`);
        }
      }
    } catch (err) {
      problems.push(`prevResult cannot be parsed (${flattenCause(err)})`);
    }
  }
  {
    using host = kernel.host();
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
  checkPod(kernel, spec, problems);
  const rules = [...hostRules(net), ...podRules(net.master, ep)];
  for (const rule of await ebtables.missing(rules)) {
    problems.push(
      `ebtables rule missing: ${rule.chain} ${rule.args.join(" ")}`,
    );
  }
  return problems;
}

function checkPod(kernel: Kernel, spec: CheckSpec, problems: string[]): void {
  const { ep } = spec;
  let pod: KernelNs;
  try {
    pod = kernel.netns(spec.netns);
  } catch (err) {
    problems.push(
      `netns "${spec.netns}" cannot be opened (${flattenCause(err)})`,
    );
    return;
  }
  using ns = pod;
  const link = ns.link(ep.ifName);
  if (link === undefined) {
    problems.push(`interface "${ep.ifName}" missing in "${spec.netns}"`);
    return;
  }
  if (link.mac !== ep.podMac) {
    problems.push(
      `interface "${ep.ifName}" has MAC ${link.mac}, not ${ep.podMac}`,
    );
  }
  if (!link.up) problems.push(`interface "${ep.ifName}" is down`);
  const have = new Set(ns.addrs(ep.ifName).map((a) => a.cidr));
  for (const a of ep.addresses) {
    if (!have.has(a)) problems.push(`address "${a}" missing on "${ep.ifName}"`);
  }
  const routes = ns.routes(ep.ifName);
  for (const r of ep.result.routes ?? []) {
    const hit = routes.some((x) =>
      x.dst === r.dst && (r.gw === undefined || x.gw === r.gw)
    );
    if (!hit) problems.push(`route "${r.dst}" via ${r.gw ?? "link"} missing`);
  }
}

/**
 * CHECK: the recorded endpoint is in place in the kernel and ebtables, and
 * the IPAM still holds its address.
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @throws {CniError} Code 106 naming every problem; 4 for a netns that is
 * no pod's.
 */
export async function cmdCheck(
  ctx: AzureVnetContext,
  args: CmdArgs,
): Promise<void> {
  const inv = await beginInvocation(ctx, args);
  const { cfg, stateDir, ipam, key } = inv;
  checkPodNetns(ctx.kernel(), args.netns);
  const snapshot = await readState(stateDir);
  const ep = findAttachment(snapshot, { ...args, network: cfg.name })?.record;
  const net = snapshot.networks[cfg.name];
  if (ep === undefined || net === undefined) {
    throw new CniError(
      PLUGIN_CODES.checkFailed,
      `CHECK failed for "${key}": no ${
        ep === undefined ? "endpoint" : "network"
      } recorded in "${stateDir}"`,
    );
  }
  const problems = await checkEndpoint(ctx.kernel(), ctx.ebtables, {
    ep,
    net,
    netns: args.netns,
    prev: args.config.prevResult,
  });
  if (problems.length > 0) {
    throw new CniError(
      PLUGIN_CODES.checkFailed,
      `CHECK failed for "${key}": ${problems.join("; ")}`,
    );
  }
  await ipam.check(ipamArgsOf(args, ep));
}
