/**
 * `azure-vnet` DEL: detach a pod, whether or not its ADD completed.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { CmdArgs } from "@vnet/cni";
import {
  type AzureVnetContext,
  beginInvocation,
  type Invocation,
} from "./context.ts";
import { deleteEndpoint, type EndpointContext } from "./endpoint.ts";
import { combineErrors } from "./errors.ts";
import { findLeftovers, removeLeftovers } from "./leftovers.ts";
import { podEnd, podFromPrevResult } from "./pod_end.ts";
import type { AzureVnetState, NetworkRecord } from "./state.ts";
import { readState, updateState, withState } from "./state.ts";

const log = getLogger(["azure-vnet"]);

/**
 * DEL of an attachment without a record of this network: an ADD killed
 * before its record was written, a repeated DEL, or a DEL for a network
 * that never attached it. Whatever that ADD may have made is found from
 * the kernel and the IPAM reservation: its own veth (the name derives
 * from the attachment), and the neighbours and per-pod rules of the
 * addresses IPAM holds for it, of the prevResult, and of its pod end.
 */
async function deleteUnrecorded(
  ctx: AzureVnetContext,
  spec: {
    endpoints: EndpointContext;
    args: CmdArgs;
    inv: Invocation;
    net: NetworkRecord | undefined;
    state: AzureVnetState;
  },
): Promise<unknown[]> {
  const { args, inv, net } = spec;
  const { host, ebtables } = spec.endpoints;
  const prev = podFromPrevResult(args.config.prevResult, args.ifName);
  const pod = podEnd(ctx.kernel(), host, {
    netns: args.netns,
    ifName: args.ifName,
    hostVeth: inv.hostVeth,
  });
  const held = await inv.ipam.reserved(args);
  const ips = [...prev?.addresses ?? [], ...pod?.addrs ?? [], ...held ?? []];
  const macs = [prev?.podMac, pod?.link.mac].filter((m) => m !== undefined);
  // The veth alone first: without a network record there is nothing else
  // to know its neighbours and rules by.
  const errors = await deleteEndpoint(spec.endpoints, {
    hostVeth: inv.hostVeth,
    network: undefined,
    pod: undefined,
  });
  if (net === undefined || (ips.length === 0 && macs.length === 0)) {
    return errors;
  }
  // Listing the rules costs an exec: only when something says they may
  // exist (a veth or a reservation of this attachment, or a neighbour).
  const search = { state: spec.state, network: net.name, only: { ips, macs } };
  const evidence = pod !== undefined || (held?.length ?? 0) > 0 ||
    findLeftovers(host, search).neighbours.length > 0;
  if (!evidence) return errors;
  try {
    const found = findLeftovers(host, {
      ...search,
      prerouting: await ebtables.list("PREROUTING"),
    });
    errors.push(...await removeLeftovers({ host, ebtables }, found));
  } catch (err) {
    errors.push(err);
  }
  try {
    // An ADD killed while writing its record leaves a temp file next to
    // the state file: taking the lock sweeps it.
    await withState(inv.stateDir, () => {}, ctx.lock);
  } catch (err) {
    errors.push(err);
  }
  return errors;
}

/**
 * DEL: removes the endpoint (veth, neighbour, rules), releases the IPAM
 * reservation, then forgets the record. Succeeds when nothing is there; a
 * DEL whose config names another network touches nothing of the first.
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @throws {CniError} When a removal or the release fails; the record is
 * kept so that a retry finishes the work.
 */
export async function cmdDel(
  ctx: AzureVnetContext,
  args: CmdArgs,
): Promise<void> {
  const inv = await beginInvocation(ctx, args);
  const { cfg, stateDir, ipam, key } = inv;
  const snapshot = await readState(stateDir);
  const recorded = snapshot.endpoints[key];
  // Another network's endpoint is not this DEL's to touch.
  const ep = recorded?.network === cfg.name ? recorded : undefined;
  if (recorded !== undefined && ep === undefined) {
    log.info("DEL {key}: attached by network {other}, not {name}", {
      key,
      other: recorded.network,
      name: cfg.name,
    });
  }
  const net = snapshot.networks[cfg.name];
  const errors: unknown[] = [];
  {
    using host = ctx.kernel().host();
    const endpoints = { kernel: ctx.kernel(), host, ebtables: ctx.ebtables };
    errors.push(
      ...ep !== undefined
        ? await deleteEndpoint(endpoints, {
          hostVeth: ep.hostVeth,
          network: net,
          pod: ep,
        })
        : await deleteUnrecorded(ctx, {
          endpoints,
          args,
          inv,
          net,
          state: snapshot,
        }),
    );
  }
  try {
    await ipam.release(args);
  } catch (err) {
    errors.push(err);
  }
  if (errors.length > 0) {
    throw combineErrors(errors, `Cannot fully delete endpoint "${key}"`);
  }
  if (ep !== undefined) {
    await updateState(stateDir, (s) => {
      delete s.endpoints[key];
    }, ctx.lock);
  }
}
