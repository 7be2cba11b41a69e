/**
 * `azure-vnet` DEL: detach a pod, whether or not its ADD completed.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type CmdArgs, flattenCause } from "@vnet/cni";
import {
  type AzureVnetContext,
  beginInvocation,
  type Invocation,
} from "./context.ts";
import type { EndpointContext } from "./endpoint.ts";
import { combineErrors } from "./errors.ts";
import { forgetAttachmentLock, withAttachmentLock } from "./attachment_lock.ts";
import { findOwnAttachment, releaseAdopted } from "./adopt.ts";
import { deleteEndpoint, modeDriver } from "./mode.ts";
import { podEnd, podFromPrevResult } from "./pod_end.ts";
import type { AzureVnetState, NetworkRecord } from "./state.ts";
import { readState, updateState, withState } from "./state.ts";

const log = getLogger(["azure-vnet"]);

/**
 * DEL of an attachment without a record of this network: an ADD killed
 * before its record was written, a repeated DEL, or a DEL for a network
 * that never attached it. Whatever that ADD may have made is found from
 * the kernel and the IPAM reservation: its own veth (the name derives
 * from the attachment), and what its network's mode left beyond it (in
 * bridge mode the neighbours and per-pod rules of the addresses IPAM holds
 * for it, and those carrying its pod MAC, from the prevResult or its pod
 * end). An address alone, from a prevResult or a pod end, proves nothing:
 * the IPAM may have given it to a new pod whose ADD has plumbed it but not
 * yet recorded it (a runtime's DEL of an old sandbox after a reboot). What
 * names an address the IPAM holds for another attachment is never touched.
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
  const holdings = await inv.ipam.holdings(args);
  const macs = [prev?.podMac, pod?.link.mac].filter((m) => m !== undefined);
  // The veth alone first: without a network record there is nothing else
  // to know its neighbours and rules by.
  const errors = await deleteEndpoint(spec.endpoints, {
    hostVeth: inv.hostVeth,
    network: undefined,
    pod: undefined,
  });
  if (net === undefined) return errors;
  const traces = await modeDriver(net.mode).removeTraces({ host, ebtables }, {
    state: spec.state,
    net,
    held: holdings?.own ?? [],
    macs,
    spare: holdings?.others ?? new Set(),
    podAttached: pod !== undefined,
  });
  errors.push(...traces.errors);
  if (!traces.evidence) return errors;
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
 * The address goes back only once what is keyed by it is gone (a recorded
 * bridge endpoint's neighbours and rules, a transparent one's veth, all
 * that was found without a record), so that the retry finds what is left
 * and the address's next owner meets none of it. Runs holding the
 * attachment's lock (`attachment_lock.ts`), and once all is gone removes
 * the lock's file.
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
  const spec = { stateDir: inv.stateDir, hostVeth: inv.hostVeth };
  await withAttachmentLock({ ...spec, lock: ctx.lock }, async () => {
    await delAttachment(ctx, { args, inv });
    // All is gone: a lock file left behind costs a reconcile's look, never
    // this DEL's success.
    await forgetAttachmentLock(spec).catch((err) => {
      log.warn("DEL {key}: cannot remove its lock file: {err}", {
        key: inv.key,
        err: flattenCause(err),
      });
    });
  });
}

/** DEL's work, under the attachment's lock. */
async function delAttachment(
  ctx: AzureVnetContext,
  call: { args: CmdArgs; inv: Invocation },
): Promise<void> {
  const { args, inv } = call;
  const { cfg, stateDir, ipam, key } = inv;
  const snapshot = await readState(stateDir);
  const recorded = snapshot.endpoints[key];
  // Another network's endpoint is not this DEL's to touch. An endpoint the
  // Go azure-vnet made is found by its Go endpoint ID, only when its netns
  // or the prevResult shows it is this pod (#17).
  const found = findOwnAttachment(ctx.kernel(), {
    args,
    state: snapshot,
    network: cfg.name,
  });
  const ep = found?.record;
  if (recorded !== undefined && ep === undefined) {
    log.info("DEL {key}: attached by network {other}, not {name}", {
      key,
      other: recorded.network,
      name: cfg.name,
    });
  }
  const net = snapshot.networks[cfg.name];
  const errors: unknown[] = [];
  async function release(): Promise<unknown[]> {
    try {
      // An adopted endpoint's address is held under its record's key in
      // our IPAM file, whatever the route (#17).
      await (ep?.acn === undefined
        ? ipam.release(args)
        : releaseAdopted(ep, { stateDir, ...ctx.lock }));
      return [];
    } catch (err) {
      return [err];
    }
  }
  {
    using host = ctx.kernel().host();
    const endpoints = { kernel: ctx.kernel(), host, ebtables: ctx.ebtables };
    errors.push(
      ...ep !== undefined
        // A recorded endpoint's address is released while the kernel
        // deletes its veth; without a record, the reservation is what
        // finds the leftovers, so it goes last. Either way, only once the
        // kernel objects keyed by the address are gone.
        ? await deleteEndpoint(endpoints, {
          hostVeth: ep.hostVeth,
          network: net,
          pod: ep,
          alongside: release,
        })
        : await deleteUnrecorded(ctx, {
          endpoints,
          args,
          inv,
          net,
          state: snapshot,
        }).then((errs) => errs.length > 0 ? errs : release()),
    );
  }
  if (errors.length > 0) {
    throw combineErrors(errors, `Cannot fully delete endpoint "${key}"`);
  }
  if (found !== undefined) {
    await updateState(stateDir, (s) => {
      delete s.endpoints[found.key];
    }, ctx.lock);
  }
}
