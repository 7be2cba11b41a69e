/**
 * The IPAM route: the in-process `@vnet/ipam` engine when `ipam.type` is
 * `azure-vnet-ipam` (and `ipamExec` is not set), else an exec of the IPAM
 * binary from `CNI_PATH`. The in-process route calls the engine's typed
 * API; only the exec route speaks CNI to its plugin.
 *
 * @module
 */
import {
  type CmdArgs,
  CniError,
  CODES,
  delegateAdd,
  delegateCommand,
  gcAttachments,
  type Result,
} from "@vnet/cni";
import {
  type AttachmentKey,
  attachmentKeyOf,
  IPAM_STATE_FILE,
  type IpamConfig,
  IpamEngine,
  ipamResult,
  podOf,
  readIpamState,
  requestedIpOf,
  requireFreeAddress,
  requireHeld,
  reservedBy,
} from "@vnet/ipam";
import { AZURE_IPAM_TYPE, type AzureVnetConfig } from "./config.ts";

/** Which route serves IPAM. */
export type IpamRouteName = "in-process" | "exec";

/**
 * Who holds which address, as the IPAM file shows it (read without a lock):
 * what a DEL without a record may take as its own, and what it must leave.
 */
export interface IpamHoldings {
  /**
   * The addresses (CIDR, subnet prefix) the attachment holds for its
   * network.
   */
  readonly own: readonly string[];
  /**
   * The addresses (bare) that any other attachment holds, in any network:
   * an ADD under way may already have plumbed them.
   */
  readonly others: ReadonlySet<string>;
}

/** The IPAM calls of `azure-vnet`, taking the plugin's own CmdArgs. */
export interface IpamRoute {
  /** The route's name. */
  readonly name: IpamRouteName;
  /**
   * Reserves the attachment's address: the abbreviated IPAM result.
   * `subnet` asks for the pool of a live network (our IPAM serves several).
   */
  add(args: CmdArgs, request: { subnet?: string }): Promise<Result>;
  /**
   * Releases what the attachment of `args` (or `key`, for GC of a recorded
   * endpoint) holds in this network.
   */
  release(args: CmdArgs, key?: AttachmentKey): Promise<void>;
  /**
   * What the attachment of `args` holds for its network, and what the
   * others hold, read without a lock; undefined when the route cannot tell
   * (an exec'd IPAM has no such verb).
   */
  holdings(args: CmdArgs): Promise<IpamHoldings | undefined>;
  /** IPAM CHECK of the attachment against `prevResult`. */
  check(args: CmdArgs): Promise<void>;
  /** IPAM STATUS: can an ADD get an address now. */
  status(args: CmdArgs): Promise<void>;
  /** IPAM GC: releases what `cni.dev/valid-attachments` does not list. */
  collect(args: CmdArgs): Promise<void>;
}

/** Options of {@link selectIpamRoute}. */
export interface IpamRouteOptions {
  /** The state directory of the in-process engine. */
  stateDir?: string;
  /** Replaces the route (tests). */
  route?: IpamRoute;
}

/**
 * The same invocation with `ipam.subnet` set, in both `config` and `stdin`,
 * for an exec'd `azure-vnet-ipam`.
 *
 * @param args The plugin's CmdArgs.
 * @param subnet The subnet CIDR.
 * @returns New CmdArgs (`args` is not changed).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CmdArgs, parseCniArgs } from "@vnet/cni";
 * import { withIpamSubnet } from "./ipam_route.ts";
 * const config = { cniVersion: "1.1.0", name: "n", type: "azure-vnet",
 *   ipam: { type: "azure-vnet-ipam" } };
 * const args: CmdArgs = { command: "ADD", containerId: "c", netns: "/n",
 *   ifName: "eth0", args: parseCniArgs(""), rawArgs: "", path: [],
 *   stdin: new TextEncoder().encode(JSON.stringify(config)), config,
 *   env: {} };
 * const out = withIpamSubnet(args, "10.0.0.0/24");
 * assert.equal(out.config.ipam?.subnet, "10.0.0.0/24");
 * const sent = JSON.parse(new TextDecoder().decode(out.stdin));
 * assert.equal(sent.ipam.subnet, "10.0.0.0/24");
 * ```
 */
export function withIpamSubnet(args: CmdArgs, subnet: string): CmdArgs {
  const sent: unknown = JSON.parse(new TextDecoder().decode(args.stdin));
  const ipam = (sent as { ipam?: unknown } | null)?.ipam;
  if (
    args.config.ipam === undefined || typeof ipam !== "object" ||
    ipam === null || Array.isArray(ipam)
  ) return args;
  const stdin = new TextEncoder().encode(
    JSON.stringify({ ...sent as object, ipam: { ...ipam, subnet } }),
  );
  const config = { ...args.config, ipam: { ...args.config.ipam, subnet } };
  return { ...args, config, stdin };
}

/**
 * The DEL of another attachment of the same network, for an exec'd IPAM.
 *
 * @param args The plugin's CmdArgs (a GC).
 * @param key The attachment to release.
 * @returns CmdArgs of a DEL with an empty `CNI_NETNS`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { type CmdArgs, parseCniArgs } from "@vnet/cni";
 * import { delArgsFor } from "./ipam_route.ts";
 * const config = { cniVersion: "1.1.0", name: "n", type: "azure-vnet" };
 * const gc: CmdArgs = { command: "GC", containerId: "", netns: "",
 *   ifName: "", args: parseCniArgs(""), rawArgs: "", path: [],
 *   stdin: new Uint8Array(), config, env: { CNI_COMMAND: "GC" } };
 * const del = delArgsFor(gc, { containerId: "c1", ifName: "eth0" });
 * assert.equal(del.env.CNI_COMMAND, "DEL");
 * assert.equal(del.env.CNI_CONTAINERID, "c1");
 * ```
 */
export function delArgsFor(args: CmdArgs, key: AttachmentKey): CmdArgs {
  return {
    ...args,
    command: "DEL",
    containerId: key.containerId,
    ifName: key.ifName,
    netns: "",
    env: {
      ...args.env,
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: key.containerId,
      CNI_IFNAME: key.ifName,
      CNI_NETNS: "",
    },
  };
}

/** The in-process route over one engine. */
function inProcessRoute(
  cfg: AzureVnetConfig,
  options: { stateDir: string },
): IpamRoute {
  const config: IpamConfig | undefined = cfg.ipamConfig;
  if (config === undefined) {
    throw new CniError(
      CODES.internal,
      `No validated azure-vnet-ipam section for network "${cfg.name}"`,
    );
  }
  const network = { network: cfg.name };
  let bound: IpamEngine | undefined;
  function engine(): IpamEngine {
    bound ??= new IpamEngine({ stateDir: options.stateDir });
    return bound;
  }
  return {
    name: "in-process",
    async add(args, request) {
      const r = await engine().reserve(attachmentKeyOf(args), {
        config,
        ...network,
        subnet: request.subnet ?? config.subnet,
        requestedIp: requestedIpOf(args, config),
        pod: podOf(args),
      });
      return ipamResult(r, {
        cniVersion: args.config.cniVersion,
        dns: config.dns,
      });
    },
    async release(args, key) {
      if (key === undefined && args.containerId === "") return;
      await engine().release(key ?? attachmentKeyOf(args), network);
    },
    async holdings(args) {
      const state = await readIpamState(
        `${options.stateDir}/${IPAM_STATE_FILE}`,
      );
      const mine = reservedBy(state, attachmentKeyOf(args), network);
      const ownIps = new Set(mine.map((a) => a.ip));
      const others = new Set<string>();
      for (const pool of Object.values(state?.pools ?? {})) {
        for (const [ip, rec] of Object.entries(pool.addresses)) {
          if (rec.containerId !== undefined && !ownIps.has(ip)) others.add(ip);
        }
      }
      return {
        own: mine.map((a) => `${a.ip}/${a.pool.subnet.split("/")[1]}`),
        others,
      };
    },
    async check(args) {
      const key = attachmentKeyOf(args);
      const held = await engine().held(key);
      requireHeld(held, { key, prevResult: args.config.prevResult });
    },
    async status() {
      requireFreeAddress(await engine().status(config));
    },
    async collect(args) {
      const keep = gcAttachments(args.config, { required: true }).map((a) => ({
        containerId: String(a.containerID),
        ifName: String(a.ifname ?? ""),
      }));
      await engine().collect(keep, network);
    },
  };
}

/**
 * The IPAM plugin `azure-vnet` would exec for a network config as it comes
 * on stdin, before validation: `ipam.type` when the route is exec
 * ({@link selectIpamRoute}), undefined for the in-process route or a config
 * that names no IPAM (its validation error is the answer).
 *
 * @param config The parsed stdin.
 * @returns The delegate's type, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipamDelegateOf } from "./ipam_route.ts";
 * assert.equal(ipamDelegateOf({ ipam: { type: "azure-vnet-ipam" } }), undefined);
 * assert.equal(
 *   ipamDelegateOf({ ipam: { type: "azure-vnet-ipam" }, ipamExec: true }),
 *   "azure-vnet-ipam",
 * );
 * assert.equal(ipamDelegateOf({ ipam: { type: "host-local" } }), "host-local");
 * ```
 */
export function ipamDelegateOf(config: unknown): string | undefined {
  if (typeof config !== "object" || config === null) return undefined;
  const { ipam, ipamExec } = config as { ipam?: unknown; ipamExec?: unknown };
  const type = typeof ipam === "object" && ipam !== null
    ? (ipam as { type?: unknown }).type
    : undefined;
  if (typeof type !== "string" || type === "") return undefined;
  return type === AZURE_IPAM_TYPE && ipamExec !== true ? undefined : type;
}

/**
 * Chooses the IPAM route for a config.
 *
 * @param config The validated config.
 * @param options The state dir for the in-process engine, or a route.
 * @returns The route.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * import { selectIpamRoute } from "./ipam_route.ts";
 * const base = { cniVersion: "1.0.0", name: "n", type: "azure-vnet" };
 * const ours = parseConfig({ ...base, ipam: { type: "azure-vnet-ipam" } });
 * assert.equal(selectIpamRoute(ours).name, "in-process");
 * const other = parseConfig({ ...base, ipam: { type: "host-local" } });
 * assert.equal(selectIpamRoute(other).name, "exec");
 * ```
 */
export function selectIpamRoute(
  config: AzureVnetConfig,
  options: IpamRouteOptions = {},
): IpamRoute {
  if (options.route !== undefined) return options.route;
  const type = config.ipam.type;
  if (type === AZURE_IPAM_TYPE && !config.ipamExec) {
    return inProcessRoute(config, {
      stateDir: options.stateDir ?? "/var/run",
    });
  }
  return {
    name: "exec",
    add: (args, request) =>
      delegateAdd(type, {
        args: request.subnet === undefined
          ? args
          : withIpamSubnet(args, request.subnet),
      }),
    release: (args, key) =>
      delegateCommand(type, "DEL", {
        args: key === undefined ? args : delArgsFor(args, key),
      }),
    holdings: () => Promise.resolve(undefined),
    check: (args) => delegateCommand(type, "CHECK", { args }),
    status: (args) => delegateCommand(type, "STATUS", { args }),
    collect: (args) => delegateCommand(type, "GC", { args }),
  };
}
