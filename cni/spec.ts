/**
 * CNI wire types, keyed exactly as on the wire, per spec version.
 *
 * The internal form of a result is {@link Result} (the 1.1.0 shape); version
 * conversion to and from older shapes lives in `version.ts`.
 *
 * @module
 */

/** Every `cniVersion` we speak, oldest first. */
export const SUPPORTED_VERSIONS = [
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.3.1",
  "0.4.0",
  "1.0.0",
  "1.1.0",
] as const;

/** One supported version string. */
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

/** The version assumed for a config without `cniVersion` (as the original). */
export const DEFAULT_VERSION: CniVersion = "0.2.0";

/** The CNI commands. */
export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";

/** `dns` in configs and results. */
export interface Dns {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** `interfaces[]` of a result. */
export interface Interface {
  name: string;
  mac?: string;
  /** 1.1.0 only. */
  mtu?: number;
  sandbox?: string;
  /** 1.1.0 only. */
  socketPath?: string;
  /** 1.1.0 only. */
  pciID?: string;
}

/** `ips[]` of a result (1.0 shape; `version` is added for 0.3.x/0.4.0). */
export interface IpConfig {
  /** CIDR, for example `10.240.0.5/16`. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

/** `routes[]` of a result. */
export interface Route {
  dst: string;
  gw?: string;
  /** 1.1.0 only. */
  mtu?: number;
  /** 1.1.0 only. */
  advmss?: number;
  /** 1.1.0 only. */
  priority?: number;
  /** 1.1.0 only. */
  table?: number;
  /** 1.1.0 only. */
  scope?: number;
}

/**
 * A result in the internal (1.1.0) shape. `cniVersion` is the version it was
 * produced for or parsed from.
 */
export interface Result {
  cniVersion: string;
  interfaces?: Interface[];
  ips?: IpConfig[];
  routes?: Route[];
  dns?: Dns;
}

/** The 0.1.0/0.2.0 `ip4`/`ip6` object. */
export interface LegacyIpConfig {
  ip: string;
  gateway?: string;
  routes?: Route[];
}

/** A 0.1.0/0.2.0 result. */
export interface LegacyResult {
  cniVersion: string;
  ip4?: LegacyIpConfig;
  ip6?: LegacyIpConfig;
  dns?: Dns;
}

/** The `ipam` section of a network config. */
export interface IpamSection {
  type: string;
  [key: string]: unknown;
}

/** A GC attachment (`cni.dev/valid-attachments[]`). */
export interface Attachment {
  containerID: string;
  ifname: string;
}

/**
 * The network configuration a plugin receives on stdin (a single plugin
 * object with `cniVersion` and `name` inserted by the runtime). Unknown keys
 * are kept.
 */
export interface NetConf {
  cniVersion: string;
  name: string;
  type: string;
  ipam?: IpamSection;
  dns?: Dns;
  runtimeConfig?: Record<string, unknown>;
  args?: Record<string, unknown>;
  prevResult?: Record<string, unknown>;
  /** `null` from libcni for a nil list: none is valid. */
  "cni.dev/valid-attachments"?: Attachment[] | null;
  /** The older key of the same list. */
  "cni.dev/attachments"?: Attachment[] | null;
  [key: string]: unknown;
}

/** Parsed `CNI_ARGS` (`K=V;K=V`). */
export interface CniArgs {
  /** Every key and value, in order of appearance. */
  readonly all: ReadonlyMap<string, string>;
  readonly ignoreUnknown: boolean;
  readonly podName?: string;
  readonly podNamespace?: string;
  readonly podInfraContainerId?: string;
  /** `IP=`: requested addresses (may carry a prefix). */
  readonly ips: readonly string[];
  /** `MAC=`. */
  readonly mac?: string;
}

/**
 * Everything a handler gets for one invocation: the environment, parsed, and
 * the raw and parsed stdin.
 */
export interface CmdArgs {
  readonly command: CniCommand;
  /** `CNI_CONTAINERID`; empty for STATUS/GC. */
  readonly containerId: string;
  /** `CNI_NETNS`; may be empty on DEL. */
  readonly netns: string;
  /** `CNI_IFNAME`; empty for STATUS/GC. */
  readonly ifName: string;
  /** `CNI_ARGS`, parsed. */
  readonly args: CniArgs;
  /** `CNI_ARGS`, raw. */
  readonly rawArgs: string;
  /** `CNI_PATH`, split on `:`. */
  readonly path: readonly string[];
  /** The exact stdin bytes, for delegation. */
  readonly stdin: Uint8Array;
  /** stdin, parsed (with `cniVersion` defaulted). */
  readonly config: NetConf;
  /** The full process env the plugin received (`CNI_*` only are trusted). */
  readonly env: Readonly<Record<string, string>>;
}

/**
 * A plugin's handlers. ADD returns a result in the internal shape; skel
 * converts it to `config.cniVersion`. The others return nothing on success.
 * A missing handler answers its command with error 4 ("not supported").
 */
export interface PluginHandlers {
  cmdAdd(args: CmdArgs): Promise<Result>;
  cmdDel(args: CmdArgs): Promise<void>;
  cmdCheck?(args: CmdArgs): Promise<void>;
  cmdStatus?(args: CmdArgs): Promise<void>;
  cmdGc?(args: CmdArgs): Promise<void>;
}

/**
 * A plugin's verbs as top-level functions over a context `C` (as the Go
 * reference plugins write them: `cmdAdd(ctx, args)`).
 */
export interface PluginVerbs<C> {
  cmdAdd(ctx: C, args: CmdArgs): Promise<Result>;
  cmdDel(ctx: C, args: CmdArgs): Promise<void>;
  cmdCheck(ctx: C, args: CmdArgs): Promise<void>;
  cmdStatus(ctx: C, args: CmdArgs): Promise<void>;
  cmdGc(ctx: C, args: CmdArgs): Promise<void>;
}

/**
 * Binds a plugin's verbs to one context: the handlers for `runPlugin()`.
 *
 * @param ctx The context every verb gets.
 * @param verbs The verbs.
 * @returns The handlers.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { bindVerbs } from "./spec.ts";
 * const ok = () => Promise.resolve();
 * const handlers = bindVerbs({ n: 1 }, {
 *   cmdAdd: (ctx) => Promise.resolve({ cniVersion: `1.${ctx.n}.0` }),
 *   cmdDel: ok, cmdCheck: ok, cmdStatus: ok, cmdGc: ok,
 * });
 * assert.equal(typeof handlers.cmdGc, "function");
 * ```
 */
export function bindVerbs<C>(ctx: C, verbs: PluginVerbs<C>): PluginHandlers {
  return {
    cmdAdd: (args) => verbs.cmdAdd(ctx, args),
    cmdDel: (args) => verbs.cmdDel(ctx, args),
    cmdCheck: (args) => verbs.cmdCheck(ctx, args),
    cmdStatus: (args) => verbs.cmdStatus(ctx, args),
    cmdGc: (args) => verbs.cmdGc(ctx, args),
  };
}
