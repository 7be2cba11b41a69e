/**
 * The IPAM route: the in-process `@vnet/ipam` engine when `ipam.type` is
 * `azure-vnet-ipam` (and `ipamExec` is not set), else an exec of the IPAM
 * binary from `CNI_PATH`. Every verb takes the same route, with the same
 * CmdArgs (the full config, the same CNI arguments).
 *
 * @module
 */
import {
  type CmdArgs,
  type CniCommand,
  delegateAdd,
  delegateCommand,
  type PluginHandlers,
  type Result,
} from "@vnet/cni";
import {
  createIpamHandlers,
  DEFAULT_STATE_DIR,
  IPAM_STATE_FILE,
  readIpamState,
  reservedBy,
} from "@vnet/ipam";
import { AZURE_IPAM_TYPE, type AzureVnetConfig } from "./config.ts";

/** Which route serves IPAM. */
export type IpamRouteName = "in-process" | "exec";

/** The IPAM verbs, taking the plugin's own CmdArgs. */
export interface IpamRoute {
  /** The route's name. */
  readonly name: IpamRouteName;
  /** IPAM ADD: the abbreviated result. */
  add(args: CmdArgs): Promise<Result>;
  /**
   * The addresses (CIDR, subnet prefix) the attachment of `args` holds for
   * its network, read without a lock; undefined when the route cannot tell
   * (an exec'd IPAM has no such verb).
   */
  reserved(args: CmdArgs): Promise<string[] | undefined>;
  /** IPAM DEL, CHECK, STATUS or GC. */
  run(
    command: Exclude<CniCommand, "ADD" | "VERSION">,
    args: CmdArgs,
  ): Promise<void>;
}

/** Options of {@link selectIpamRoute}. */
export interface IpamRouteOptions {
  /** The state directory handed to the in-process engine. */
  stateDir?: string;
  /** Replaces the in-process engine (tests). */
  engine?: PluginHandlers;
}

function withCommand(args: CmdArgs, command: CniCommand): CmdArgs {
  return { ...args, command, env: { ...args.env, CNI_COMMAND: command } };
}

/**
 * The same invocation with `ipam.subnet` set, in both `config` and `stdin`,
 * so the in-process and the exec route see the same request.
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
 * Chooses the IPAM route for a config.
 *
 * @param config The validated config.
 * @param options The state dir for the in-process engine.
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
  const type = config.ipam.type;
  let engine = options.engine;
  function handlers(): PluginHandlers {
    engine ??= createIpamHandlers(
      options.stateDir === undefined ? {} : { stateDir: options.stateDir },
    );
    return engine;
  }
  if (type === AZURE_IPAM_TYPE && !config.ipamExec) {
    return {
      name: "in-process",
      add: (args) => handlers().cmdAdd(withCommand(args, "ADD")),
      async reserved(args) {
        const dir = options.stateDir ?? DEFAULT_STATE_DIR;
        const state = await readIpamState(`${dir}/${IPAM_STATE_FILE}`);
        const held = reservedBy(state, {
          containerId: args.containerId,
          ifName: args.ifName,
        }, { network: config.name });
        return held.map((a) => `${a.ip}/${a.pool.subnet.split("/")[1]}`);
      },
      async run(command, args) {
        const h = handlers();
        const a = withCommand(args, command);
        if (command === "DEL") return await h.cmdDel(a);
        if (command === "CHECK") return await h.cmdCheck?.(a);
        if (command === "STATUS") return await h.cmdStatus?.(a);
        return await h.cmdGc?.(a);
      },
    };
  }
  return {
    name: "exec",
    add: (args) => delegateAdd(type, { args }),
    reserved: () => Promise.resolve(undefined),
    run: (command, args) => delegateCommand(type, command, { args }),
  };
}
