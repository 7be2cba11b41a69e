/**
 * What every `azure-vnet` verb works with: the context (kernel port,
 * ebtables driver, state directory, IPAM route) and the invocation derived
 * from one CNI call.
 *
 * @module
 */
import type { CmdArgs } from "@vnet/cni";
import { adoptIfPresent } from "./adopt.ts";
import { type AzureVnetConfig, parseConfig } from "./config.ts";
import { Ebtables } from "./ebtables.ts";
import { type IpamRoute, selectIpamRoute } from "./ipam_route.ts";
import type { Kernel } from "./kernel.ts";
import { endpointKey, hostVethName } from "./names.ts";
import { netlinkKernel } from "./netlink_kernel.ts";

/** The default state directory. */
export const DEFAULT_STATE_DIR = "/var/run";

/** Options of {@link createContext}; every one is injectable. */
export interface AzureVnetOptions {
  /**
   * The state directory. Default: `AZURE_VNET_STATE_DIR` from the
   * invocation's environment, else `/var/run`.
   */
  stateDir?: string;
  /** The kernel port (default: netlink, bound on first use). */
  kernel?: Kernel;
  /** The ebtables driver (default: the `ebtables` binary). */
  ebtables?: Ebtables;
  /** Replaces the IPAM route (tests). */
  ipam?: IpamRoute;
  /** Called once the config is valid (entry points set the log level). */
  onConfig?: (config: AzureVnetConfig) => Promise<void> | void;
  /** Bound of every state-lock wait, in ms. */
  lockTimeoutMs?: number;
}

/** The context of the verbs (`cmdAdd`, `cmdDel`, ...). */
export interface AzureVnetContext {
  /** The kernel port. */
  kernel(): Kernel;
  /** The ebtables driver. */
  readonly ebtables: Ebtables;
  /** The options it was made from. */
  readonly options: Readonly<AzureVnetOptions>;
  /** The state-lock options. */
  readonly lock: { lockTimeoutMs?: number };
}

/**
 * Creates the context; libnl is bound on the first kernel call.
 *
 * @param options State dir, kernel, ebtables, IPAM route, config hook.
 * @returns The context.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createContext } from "./context.ts";
 * const ctx = createContext({ stateDir: "/tmp/x" });
 * assert.equal(ctx.options.stateDir, "/tmp/x");
 * ```
 */
export function createContext(
  options: AzureVnetOptions = {},
): AzureVnetContext {
  let kernel = options.kernel;
  return {
    kernel() {
      kernel ??= netlinkKernel();
      return kernel;
    },
    ebtables: options.ebtables ?? new Ebtables(),
    options,
    lock: options.lockTimeoutMs === undefined
      ? {}
      : { lockTimeoutMs: options.lockTimeoutMs },
  };
}

/** The host's links, as adoption reads them (host veth MACs and MTUs). */
function hostLinks(
  ctx: AzureVnetContext,
): { name: string; mac: string; mtu: number }[] {
  using host = ctx.kernel().host();
  return host.links().map((l) => ({ name: l.name, mac: l.mac, mtu: l.mtu }));
}

/** One CNI call, resolved: config, state dir, IPAM route and names. */
export interface Invocation {
  /** The validated config. */
  readonly cfg: AzureVnetConfig;
  /** The state directory. */
  readonly stateDir: string;
  /** The IPAM route. */
  readonly ipam: IpamRoute;
  /** The endpoint key (`<container id>/<ifname>`). */
  readonly key: string;
  /** The host veth name, derived from the attachment. */
  readonly hostVeth: string;
}

/**
 * Validates the config and resolves the invocation of `args`. State files
 * the Go azure-vnet wrote are adopted first (`adopt.ts`).
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @returns The invocation.
 * @throws {CniError} Code 7 on an invalid config; 102 when Go state
 * cannot be adopted.
 */
export async function beginInvocation(
  ctx: AzureVnetContext,
  args: CmdArgs,
): Promise<Invocation> {
  const cfg = parseConfig(args.config);
  await ctx.options.onConfig?.(cfg);
  const stateDir = ctx.options.stateDir ?? args.env.AZURE_VNET_STATE_DIR ??
    DEFAULT_STATE_DIR;
  // A node the Go azure-vnet set up: convert its state first (#17). The
  // veth's name (a digest) is computed meanwhile.
  const [, hostVeth] = await Promise.all([
    adoptIfPresent(stateDir, { ...ctx.lock, links: () => hostLinks(ctx) }),
    hostVethName(cfg.name, {
      containerId: args.containerId,
      ifName: args.ifName,
    }),
  ]);
  return {
    cfg,
    stateDir,
    ipam: selectIpamRoute(cfg, {
      stateDir,
      ...(ctx.options.ipam === undefined ? {} : { route: ctx.options.ipam }),
    }),
    key: endpointKey(args.containerId, args.ifName),
    hostVeth,
  };
}
