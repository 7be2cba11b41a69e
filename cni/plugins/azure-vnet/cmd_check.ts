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
import { type AzureVnetContext, beginInvocation } from "./context.ts";
import { modeDriver } from "./mode.ts";
import { checkPodNetns } from "./pod_end.ts";
import { checkAdopted, findOwnAttachment } from "./adopt.ts";
import type { EndpointRecord } from "./state.ts";
import { readState } from "./state.ts";

/**
 * Compares the recorded addresses with the prevResult, when given.
 *
 * @returns One line per problem (empty when all is in place).
 */
function checkPrevResult(
  ep: EndpointRecord,
  prev: Record<string, unknown> | undefined,
): string[] {
  if (prev === undefined) return [];
  const problems: string[] = [];
  try {
    const want = new Set((parseResult(prev).ips ?? []).map((ip) => ip.address));
    for (const a of ep.addresses) {
      if (!want.has(a)) problems.push(`address "${a}" is not in prevResult`);
    }
  } catch (err) {
    problems.push(`prevResult cannot be parsed (${flattenCause(err)})`);
  }
  return problems;
}

/**
 * CHECK: the recorded endpoint is in place in the kernel (and ebtables, in
 * bridge mode) as its network's mode made it, and the IPAM still holds its
 * address.
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
  // An adopted endpoint found by its Go endpoint ID counts only when its
  // netns or the prevResult shows it is this pod (#17).
  const ep = findOwnAttachment(ctx.kernel(), {
    args,
    state: snapshot,
    network: cfg.name,
  })?.record;
  const net = snapshot.networks[cfg.name];
  if (ep === undefined || net === undefined) {
    throw new CniError(
      PLUGIN_CODES.checkFailed,
      `CHECK failed for "${key}": no ${
        ep === undefined ? "endpoint" : "network"
      } recorded in "${stateDir}"`,
    );
  }
  const problems = [
    ...checkPrevResult(ep, args.config.prevResult),
    ...await modeDriver(net.mode).checkEndpoint(
      { kernel: ctx.kernel(), ebtables: ctx.ebtables },
      { ep, net, netns: args.netns },
    ),
  ];
  if (problems.length > 0) {
    throw new CniError(
      PLUGIN_CODES.checkFailed,
      `CHECK failed for "${key}": ${problems.join("; ")}`,
    );
  }
  // An adopted endpoint's address is held in our IPAM file, whatever the
  // route (#17).
  await (ep.acn === undefined ? ipam.check(args) : checkAdopted(ep, {
    stateDir,
    ...ctx.lock,
    prevResult: args.config.prevResult,
  }));
}
