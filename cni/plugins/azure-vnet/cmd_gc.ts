/**
 * `azure-vnet` GC: remove what the runtime no longer lists.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type CmdArgs, flattenCause, gcAttachments } from "@vnet/cni";
import { type AzureVnetContext, beginInvocation } from "./context.ts";
import { combineErrors } from "./errors.ts";
import { removeLeftovers } from "./leftovers.ts";
import { deleteEndpoint, modeDriver } from "./mode.ts";
import { endpointKey } from "./names.ts";
import { type EndpointRecord, readState, withState } from "./state.ts";
import {
  listedAdopted,
  releaseAdopted,
  withAdoptedAttachments,
} from "./adopt.ts";

const log = getLogger(["azure-vnet"]);

/**
 * GC: removes this network's endpoints that `cni.dev/valid-attachments`
 * does not list (as DEL would), then the leftovers of interrupted ADDs that
 * no record accounts for, then the IPAM's unlisted reservations. An
 * endpoint whose kernel objects could not all be removed keeps its record
 * and its reservation. Other networks are left alone.
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @throws {CniError} Code 7 without `cni.dev/valid-attachments` (nothing
 * is removed); the first failure's code when work is left undone.
 */
export async function cmdGc(
  ctx: AzureVnetContext,
  args: CmdArgs,
): Promise<void> {
  const inv = await beginInvocation(ctx, args);
  const { cfg, stateDir, ipam } = inv;
  const listed = gcAttachments(args.config, { required: true });
  const keep = new Set(listed.map((a) => endpointKey(a.containerID, a.ifname)));
  const snapshot = await readState(stateDir);
  // Endpoints the Go azure-vnet made are listed by their Go endpoint ID.
  const adopted = listedAdopted(snapshot, {
    network: cfg.name,
    attachments: listed,
  });
  const stale = Object.entries(snapshot.endpoints).filter(([k, e]) =>
    e.network === cfg.name && !keep.has(k) && !adopted.has(k)
  );
  const net = snapshot.networks[cfg.name];
  const errors: unknown[] = [];
  const removed: string[] = [];
  // Endpoints whose kernel objects are left keep their address (and their
  // record) for the next GC or DEL: given out again, it would meet them.
  const left: EndpointRecord[] = [];
  using host = ctx.kernel().host();
  const endpoints = { kernel: ctx.kernel(), host, ebtables: ctx.ebtables };
  for (const [k, e] of stale) {
    const errs = await deleteEndpoint(endpoints, {
      hostVeth: e.hostVeth,
      network: net,
      pod: e,
    });
    if (errs.length > 0) {
      left.push(e);
    } else {
      try {
        // An adopted endpoint's address is held in our IPAM file, whatever
        // the route (#17).
        await (e.acn === undefined
          ? ipam.release(args, {
            containerId: e.containerId,
            ifName: e.ifName,
          })
          : releaseAdopted(e, { stateDir, ...ctx.lock }));
      } catch (err) {
        errs.push(err);
      }
    }
    if (errs.length === 0) removed.push(k);
    errors.push(...errs);
    log.info("GC {key}: {outcome}", {
      key: k,
      outcome: errs.length === 0 ? "removed" : flattenCause(errs[0]),
    });
  }
  const after = removed.length === 0 ? snapshot : await withState(
    stateDir,
    async (s) => {
      for (const k of removed) delete s.state.endpoints[k];
      await s.save();
      return s.state;
    },
    ctx.lock,
  );
  // Leftovers of interrupted ADDs (no record): the runtime never runs GC
  // alongside ADD or DEL, so whatever no record accounts for is garbage.
  const live = after.networks[cfg.name];
  if (live !== undefined) {
    try {
      const found = await modeDriver(live.mode).leftovers(
        { host, ebtables: ctx.ebtables },
        { state: after, network: cfg.name },
      );
      errors.push(
        ...await removeLeftovers({ host, ebtables: ctx.ebtables }, found),
      );
    } catch (err) {
      errors.push(err);
    }
  }
  try {
    // The IPAM's GC keeps what the runtime lists, the listed adopted
    // endpoints (by their reservations' key) and the endpoints left above.
    await ipam.collect(
      withAdoptedAttachments(args, [
        ...[...adopted].map((k) => snapshot.endpoints[k]).filter((e) =>
          e !== undefined
        ),
        ...left,
      ]),
    );
  } catch (err) {
    errors.push(err);
  }
  if (errors.length > 0) throw combineErrors(errors, "GC left work undone");
}
