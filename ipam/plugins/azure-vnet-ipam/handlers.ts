/**
 * The `azure-vnet-ipam` CNI handlers: each verb is a thin mapping of the
 * CNI invocation onto one {@link IpamEngine} call.
 *
 * ADD returns the abbreviated IPAM result (`ips`, `routes`, `dns`) in the
 * internal shape; skel converts it. DEL releases by (container id, ifname)
 * and succeeds when nothing is held. CHECK fails with 106 when the
 * reservation is missing or differs from `prevResult`. STATUS fails with 50
 * when no address is free or the source is unreachable with no state. GC
 * releases the calling network's reservations (by config `name`, recorded
 * at ADD) not in `cni.dev/valid-attachments`; other networks' reservations
 * in the shared state file are left alone.
 *
 * @module
 */
import {
  bindVerbs,
  type CmdArgs,
  gcAttachments,
  type PluginHandlers,
  type Result,
} from "@vnet/cni";
import {
  attachmentKeyOf,
  DEFAULT_STATE_DIR,
  IpamEngine,
  type IpamEngineOptions,
  ipamResult,
  networkNameOf,
  parseIpamConfig,
  podOf,
  requestedIpOf,
  requireFreeAddress,
  requireHeld,
} from "@vnet/ipam";

/**
 * What every handler works with: the engine's options. The state directory
 * defaults to `AZURE_VNET_STATE_DIR` of the invocation, else `/var/run`.
 */
export type IpamContext = IpamEngineOptions;

/** The engine for one invocation. */
function engineFor(ctx: IpamContext, args: CmdArgs): IpamEngine {
  return new IpamEngine({
    ...ctx,
    stateDir: ctx.stateDir ?? args.env.AZURE_VNET_STATE_DIR ??
      DEFAULT_STATE_DIR,
  });
}

/**
 * IPAM ADD: reserves an address for the attachment.
 *
 * @param ctx The engine options.
 * @param args The invocation.
 * @returns The abbreviated IPAM result.
 */
export async function cmdAdd(ctx: IpamContext, args: CmdArgs): Promise<Result> {
  const config = parseIpamConfig(args.config);
  const reservation = await engineFor(ctx, args).reserve(
    attachmentKeyOf(args),
    {
      config,
      network: networkNameOf(args),
      requestedIp: requestedIpOf(args, config),
      pod: podOf(args),
    },
  );
  return ipamResult(reservation, {
    cniVersion: args.config.cniVersion,
    dns: config.dns,
  });
}

/**
 * IPAM DEL: releases what the attachment holds in the calling network.
 *
 * @param ctx The engine options.
 * @param args The invocation.
 */
export async function cmdDel(ctx: IpamContext, args: CmdArgs): Promise<void> {
  if (args.containerId === "") return;
  await engineFor(ctx, args).release(attachmentKeyOf(args), {
    network: networkNameOf(args),
  });
}

/**
 * IPAM CHECK: the reservation exists and is the one in `prevResult`.
 *
 * @param ctx The engine options.
 * @param args The invocation.
 * @throws {CniError} Code 106 otherwise.
 */
export async function cmdCheck(
  ctx: IpamContext,
  args: CmdArgs,
): Promise<void> {
  parseIpamConfig(args.config);
  const key = attachmentKeyOf(args);
  const held = await engineFor(ctx, args).held(key);
  requireHeld(held, { key, prevResult: args.config.prevResult });
}

/**
 * IPAM STATUS: an address is free (after a due refresh).
 *
 * @param ctx The engine options.
 * @param args The invocation.
 * @throws {CniError} Code 50 otherwise.
 */
export async function cmdStatus(
  ctx: IpamContext,
  args: CmdArgs,
): Promise<void> {
  const config = parseIpamConfig(args.config);
  requireFreeAddress(await engineFor(ctx, args).status(config));
}

/**
 * IPAM GC: releases the calling network's reservations not in
 * `cni.dev/valid-attachments`.
 *
 * @param ctx The engine options.
 * @param args The invocation.
 * @throws {CniError} Code 7 when the list is missing; nothing is released.
 */
export async function cmdGc(ctx: IpamContext, args: CmdArgs): Promise<void> {
  const keep = gcAttachments(args.config, { required: true }).map((a) => ({
    containerId: String(a.containerID),
    ifName: String(a.ifname ?? ""),
  }));
  await engineFor(ctx, args).collect(keep, { network: networkNameOf(args) });
}

/**
 * The handlers for `runPlugin()`, bound to one context.
 *
 * @param ctx The engine options (state dir, fetch, host MACs, clock...).
 * @returns ADD, DEL, CHECK, STATUS and GC.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createIpamHandlers } from "./handlers.ts";
 * const stateDir = await Deno.makeTempDir();
 * const handlers = createIpamHandlers({ stateDir });
 * assert.equal(typeof handlers.cmdAdd, "function");
 * await Deno.remove(stateDir, { recursive: true });
 * ```
 */
export function createIpamHandlers(ctx: IpamContext = {}): PluginHandlers {
  return bindVerbs(ctx, { cmdAdd, cmdDel, cmdCheck, cmdStatus, cmdGc });
}
