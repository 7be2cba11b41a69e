/**
 * The `azure-vnet` handlers (bridge mode): ADD, DEL, CHECK, STATUS, GC.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  type CmdArgs,
  CniError,
  CODES,
  flattenCause,
  gcAttachments,
  parseResult,
  PLUGIN_CODES,
  type PluginHandlers,
  type Result,
} from "@vnet/cni";
import { inSubnet, looksLikeIpv6, networkOf, stripPrefix } from "@vnet/address";
import { deferUndo } from "./_undo.ts";
import {
  AZURE_IPAM_TYPE,
  type AzureVnetConfig,
  parseConfig,
} from "./config.ts";
import { Ebtables } from "./ebtables.ts";
import { wrapKernel } from "./errors.ts";
import {
  createEndpoint,
  deleteEndpoint,
  podLinkExists,
  podRules,
} from "./endpoint.ts";
import {
  type IpamRoute,
  selectIpamRoute,
  withIpamSubnet,
} from "./ipam_route.ts";
import type { Kernel, KernelNs, LinkState } from "./kernel.ts";
import { endpointKey, hostVethName } from "./names.ts";
import { findLeftovers, removeLeftovers } from "./leftovers.ts";
import { createNetwork, hostRules } from "./network.ts";
import { netlinkKernel } from "./netlink_kernel.ts";
import type { AzureVnetState, EndpointRecord, NetworkRecord } from "./state.ts";
import { readState, withState } from "./state.ts";

const log = getLogger(["azure-vnet"]);

/** The default state directory. */
export const DEFAULT_STATE_DIR = "/var/run";

/** Options of {@link createAzureVnetHandlers}. */
export interface AzureVnetOptions {
  /**
   * The state directory. Default: `AZURE_VNET_STATE_DIR` from the
   * invocation's environment, else `/var/run`.
   */
  stateDir?: string;
  /** The kernel port (default: netlink). */
  kernel?: Kernel;
  /** The ebtables driver (default: the `ebtables` binary). */
  ebtables?: Ebtables;
  /** Replaces the in-process IPAM engine (tests). */
  ipamEngine?: PluginHandlers;
  /** Called once the config is valid (entry points set the log level). */
  onConfig?: (config: AzureVnetConfig) => Promise<void> | void;
  /** Bound of every state-lock wait, in ms. */
  lockTimeoutMs?: number;
}

interface Invocation {
  readonly cfg: AzureVnetConfig;
  readonly stateDir: string;
  readonly ipam: IpamRoute;
  readonly key: string;
  readonly hostVeth: string;
}

function withDns(result: Result, dns: Result["dns"]): Result {
  const out: Result = { ...result };
  if (dns !== undefined) out.dns = dns;
  else delete out.dns;
  return out;
}

/** Pod MAC and addresses from a prevResult, when it has them. */
function podFromPrevResult(
  prev: Record<string, unknown> | undefined,
  ifName: string,
): { podMac: string; addresses: string[] } | undefined {
  if (prev === undefined) return undefined;
  try {
    const r = parseResult(prev);
    const ifaces = r.interfaces ?? [];
    const idx = ifaces.findIndex((i) => i.name === ifName && i.sandbox);
    const mac = ifaces[idx]?.mac;
    if (mac === undefined) return undefined;
    const addresses = (r.ips ?? []).filter((ip) =>
      ip.interface === undefined || ip.interface === idx
    ).map((ip) => ip.address);
    return { podMac: mac, addresses };
  } catch {
    return undefined;
  }
}

/**
 * Refuses a `CNI_NETNS` that cannot be a pod's: missing, no network
 * namespace, or the node's own (compared by device and inode, so
 * `/proc/self/ns/net` and an `ip netns attach` of the node both count).
 *
 * @throws {CniError} Code 4, before anything is changed.
 */
function checkPodNetns(kernel: Kernel, netns: string): void {
  let own: boolean;
  try {
    own = kernel.isHostNetns(netns);
  } catch (err) {
    const why = err instanceof Deno.errors.NotFound
      ? "does not exist"
      : err instanceof TypeError
      ? "is not a network namespace"
      : "cannot be opened";
    throw new CniError(
      CODES.invalidEnvironment,
      `Invalid CNI_NETNS ${JSON.stringify(netns)}: ${why}`,
      { cause: err },
    );
  }
  if (own) {
    throw new CniError(
      CODES.invalidEnvironment,
      `Invalid CNI_NETNS ${
        JSON.stringify(netns)
      }: it is the node's own network namespace, not a pod's`,
    );
  }
}

/**
 * The pod end of `hostVeth` inside `netns`: the link named `ifName` there
 * whose veth peer is `hostVeth`; undefined when it is not there.
 */
function podEnd(
  kernel: Kernel,
  host: KernelNs,
  spec: { netns: string; ifName: string; hostVeth: string },
): { link: LinkState; addrs: string[] } | undefined {
  const veth = host.link(spec.hostVeth);
  if (veth === undefined || spec.netns === "") return undefined;
  try {
    if (kernel.isHostNetns(spec.netns)) return undefined;
    using ns = kernel.netns(spec.netns);
    const link = ns.link(spec.ifName);
    if (
      link === undefined || link.peerIndex !== veth.index ||
      veth.peerIndex !== link.index
    ) return undefined;
    return { link, addrs: ns.addrs(spec.ifName).map((a) => a.cidr) };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || err instanceof TypeError) {
      return undefined;
    }
    throw err;
  }
}

function combine(errors: unknown[], msg: string): CniError {
  if (errors.length === 1 && errors[0] instanceof CniError) return errors[0];
  const first = errors.find((e) => e instanceof CniError) as
    | CniError
    | undefined;
  const agg = new AggregateError(errors, msg);
  return new CniError(first?.code ?? CODES.internal, msg, {
    cause: agg,
    details: flattenCause(agg),
  });
}

/**
 * Creates the `azure-vnet` handlers.
 *
 * Requires CAP_NET_ADMIN in the current and the pod namespaces, the
 * `ebtables` binary, and write access to the state directory.
 *
 * @param options State dir, kernel, ebtables, IPAM engine, config hook.
 * @returns The handlers for `runPlugin()`.
 *
 * @tags allow-ffi, allow-run, allow-read, allow-write, allow-env
 *
 * @example Usage
 * ```ts ignore
 * import { runPlugin } from "@vnet/cni";
 * import { createAzureVnetHandlers } from "./azure_vnet.ts";
 * const code = await runPlugin(createAzureVnetHandlers(), {
 *   name: "azure-vnet",
 *   version: "0.1.0",
 * });
 * ```
 */
export function createAzureVnetHandlers(
  options: AzureVnetOptions = {},
): PluginHandlers {
  const ebtables = options.ebtables ?? new Ebtables();
  let kernelPort = options.kernel;
  function kernel(): Kernel {
    kernelPort ??= netlinkKernel();
    return kernelPort;
  }
  const lock = options.lockTimeoutMs === undefined
    ? {}
    : { lockTimeoutMs: options.lockTimeoutMs };

  async function begin(args: CmdArgs): Promise<Invocation> {
    const cfg = parseConfig(args.config);
    await options.onConfig?.(cfg);
    const stateDir = options.stateDir ?? args.env.AZURE_VNET_STATE_DIR ??
      DEFAULT_STATE_DIR;
    const ipam = selectIpamRoute(cfg, {
      stateDir,
      ...(options.ipamEngine === undefined
        ? {}
        : { engine: options.ipamEngine }),
    });
    return {
      cfg,
      stateDir,
      ipam,
      key: endpointKey(args.containerId, args.ifName),
      hostVeth: await hostVethName(cfg.name, {
        containerId: args.containerId,
        ifName: args.ifName,
      }),
    };
  }

  /**
   * Creates the network (or takes the one another ADD just recorded) under
   * the state lock: the only ADD step that holds the lock across kernel
   * work, and only while the network does not exist yet.
   */
  async function ensureNetwork(
    host: KernelNs,
    spec: {
      cfg: AzureVnetConfig;
      stateDir: string;
      subnet: string;
      gateway: string;
    },
  ): Promise<NetworkRecord> {
    const { cfg, subnet, gateway } = spec;
    return await withState(spec.stateDir, async (s) => {
      const have = s.state.networks[cfg.name];
      if (have !== undefined && host.link(have.bridge) !== undefined) {
        return have;
      }
      if (have !== undefined) {
        // The kernel lost the network (a reboot): build it again.
        log.info("Network {name}: bridge {bridge} is gone, recreating it", {
          name: cfg.name,
          bridge: have.bridge,
        });
      }
      return await createNetwork({ kernel: host, ebtables }, {
        name: cfg.name,
        bridge: cfg.bridge,
        master: cfg.master,
        subnet,
        gateway,
        commit: async (rec) => {
          s.state.networks[cfg.name] = rec;
          await s.save();
        },
      });
    }, lock);
  }

  async function cmdAdd(args: CmdArgs): Promise<Result> {
    const inv = await begin(args);
    const { cfg, stateDir, ipam, key } = inv;
    checkPodNetns(kernel(), args.netns);
    // Reads take no lock (writes are atomic renames): only changes do.
    const snapshot = await readState(stateDir);
    const recorded = snapshot.endpoints[key];
    if (recorded !== undefined && recorded.network !== cfg.name) {
      throw new CniError(
        PLUGIN_CODES.interfaceExists,
        `Interface "${args.ifName}" of container "${args.containerId}" is attached by network "${recorded.network}", not "${cfg.name}"`,
      );
    }
    using host = kernel().host();
    if (recorded !== undefined) {
      const pod = podEnd(kernel(), host, {
        netns: args.netns,
        ifName: args.ifName,
        hostVeth: recorded.hostVeth,
      });
      if (pod !== undefined && pod.link.mac === recorded.podMac) {
        log.info("ADD {key}: already attached, returning the recorded result", {
          key,
        });
        return withDns(recorded.result, cfg.dns ?? recorded.result.dns);
      }
      // Recorded, but not attached in the netns asked for (another netns,
      // or the pod end is gone): release the old attachment's host side and
      // attach again. IPAM hands back the same reservation.
      log.warn(
        "ADD {key}: recorded in netns {old}, not attached in {netns}: re-attaching",
        { key, old: recorded.netns, netns: args.netns },
      );
      const errors = await deleteEndpoint(
        { kernel: kernel(), host, ebtables },
        {
          hostVeth: recorded.hostVeth,
          network: snapshot.networks[cfg.name],
          pod: recorded,
        },
      );
      if (errors.length > 0) {
        throw combine(errors, `Cannot release the old attachment of "${key}"`);
      }
      await withState(stateDir, async (s) => {
        delete s.state.endpoints[key];
        await s.save();
      }, lock);
    }
    if (host.link(inv.hostVeth) !== undefined) {
      // No valid record, yet the veth this attachment's name derives from
      // exists: an interrupted ADD (or DEL) of this very attachment left
      // it. Deleting it takes its pod end (CNI_IFNAME) along.
      log.warn("ADD {key}: removing leftover host veth {veth}", {
        key,
        veth: inv.hostVeth,
      });
      try {
        host.delLink(inv.hostVeth);
      } catch (err) {
        throw wrapKernel(`Cannot delete leftover veth "${inv.hostVeth}"`, err);
      }
    }
    if (podLinkExists(kernel(), { netns: args.netns, ifName: args.ifName })) {
      throw new CniError(
        PLUGIN_CODES.interfaceExists,
        `Interface "${args.ifName}" already exists in netns "${args.netns}"`,
      );
    }
    await using stack = new AsyncDisposableStack();
    const seen = snapshot.networks[cfg.name];
    const live = seen !== undefined && host.link(seen.bridge) !== undefined
      ? seen
      : undefined;
    // Our IPAM serves several subnets: ask for the live network's own.
    const ipamArgs = live !== undefined && cfg.ipam.type === AZURE_IPAM_TYPE &&
        cfg.ipam.subnet === undefined
      ? withIpamSubnet(args, live.subnet)
      : args;
    const ipamResult = await ipam.add(ipamArgs);
    deferUndo(stack, { what: "IPAM DEL", run: () => ipam.run("DEL", args) });
    const v4 = (ipamResult.ips ?? []).find((ip) => !looksLikeIpv6(ip.address));
    if (v4 === undefined) {
      throw new CniError(
        PLUGIN_CODES.delegateFailed,
        `IPAM "${cfg.ipam.type}" returned no IPv4 address`,
      );
    }
    const subnet = networkOf(v4.address);
    const gateway = v4.gateway ??
      (ipamResult.routes ?? []).find((r) => r.gw !== undefined)?.gw;
    if (gateway === undefined) {
      throw new CniError(
        PLUGIN_CODES.delegateFailed,
        `IPAM "${cfg.ipam.type}" returned no gateway for "${v4.address}"`,
      );
    }
    const net = live ??
      await ensureNetwork(host, { cfg, stateDir, subnet, gateway });
    if (!inSubnet(v4.address, net.subnet)) {
      throw new CniError(
        PLUGIN_CODES.addressUnavailable,
        `Cannot attach address "${v4.address}" from IPAM "${cfg.ipam.type}" to network "${net.name}": outside its subnet "${net.subnet}" (master "${net.master}")`,
        {
          details:
            `Set ipam.subnet to "${net.subnet}", or use another network name for the other subnet`,
        },
      );
    }
    const mtu = cfg.mtu ?? host.link(net.master)?.mtu ?? net.masterMtu;
    const ep = await createEndpoint({ kernel: kernel(), host, ebtables }, {
      network: net,
      containerId: args.containerId,
      ifName: args.ifName,
      netns: args.netns,
      hostVeth: inv.hostVeth,
      mtu,
      ipam: ipamResult,
    });
    deferUndo(stack, {
      what: "endpoint removal",
      run: async () => {
        const errors = await deleteEndpoint(
          { kernel: kernel(), host, ebtables },
          { hostVeth: ep.hostVeth, network: net, pod: ep },
        );
        if (errors.length > 0) {
          throw new AggregateError(errors, `Cannot remove endpoint "${key}"`);
        }
      },
    });
    const result = withDns(ep.result, cfg.dns ?? ipamResult.dns);
    const record: EndpointRecord = { ...ep, ipamRoute: ipam.name, result };
    await withState(stateDir, async (s) => {
      s.state.endpoints[key] = record;
      await s.save();
    }, lock);
    stack.move();
    return result;
  }

  async function cmdDel(args: CmdArgs): Promise<void> {
    const inv = await begin(args);
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
      using host = kernel().host();
      const ctx = { kernel: kernel(), host, ebtables };
      if (ep !== undefined) {
        errors.push(
          ...await deleteEndpoint(ctx, {
            hostVeth: ep.hostVeth,
            network: net,
            pod: ep,
          }),
        );
      } else {
        errors.push(
          ...await deleteUnrecorded(ctx, { args, inv, net, state: snapshot }),
        );
      }
    }
    try {
      await ipam.run("DEL", args);
    } catch (err) {
      errors.push(err);
    }
    if (errors.length > 0) {
      throw combine(errors, `Cannot fully delete endpoint "${key}"`);
    }
    if (ep !== undefined) {
      await withState(stateDir, async (s) => {
        delete s.state.endpoints[key];
        await s.save();
      }, lock);
    }
  }

  /**
   * DEL of an attachment without a record of this network: an ADD killed
   * before its record was written, a repeated DEL, or a DEL for a network
   * that never attached it. Whatever that ADD may have made is found from
   * the kernel and the IPAM reservation: its own veth (the name derives
   * from the attachment), and the neighbours and per-pod rules of the
   * addresses IPAM holds for it, of the prevResult, and of its pod end.
   */
  async function deleteUnrecorded(
    ctx: { kernel: Kernel; host: KernelNs; ebtables: Ebtables },
    spec: {
      args: CmdArgs;
      inv: Invocation;
      net: NetworkRecord | undefined;
      state: AzureVnetState;
    },
  ): Promise<unknown[]> {
    const { args, inv, net } = spec;
    const { host } = ctx;
    const prev = podFromPrevResult(args.config.prevResult, args.ifName);
    const pod = podEnd(ctx.kernel, host, {
      netns: args.netns,
      ifName: args.ifName,
      hostVeth: inv.hostVeth,
    });
    const held = await inv.ipam.reserved(args);
    const ips = [...prev?.addresses ?? [], ...pod?.addrs ?? [], ...held ?? []];
    const macs = [prev?.podMac, pod?.link.mac].filter((m) => m !== undefined);
    const errors: unknown[] = [];
    try {
      host.delLink(inv.hostVeth);
    } catch (err) {
      errors.push(wrapKernel(`Cannot delete veth "${inv.hostVeth}"`, err));
    }
    if (net === undefined || (ips.length === 0 && macs.length === 0)) {
      return errors;
    }
    // Listing the rules costs an exec: only when something says they may
    // exist (a veth or a reservation of this attachment, or a neighbour).
    const search = {
      state: spec.state,
      network: net.name,
      only: { ips, macs },
    };
    const evidence = pod !== undefined || (held?.length ?? 0) > 0 ||
      findLeftovers(host, search).neighbours.length > 0;
    if (!evidence) return errors;
    try {
      const found = findLeftovers(host, {
        ...search,
        prerouting: await ebtables.list("PREROUTING"),
        only: { ips, macs },
      });
      errors.push(...await removeLeftovers({ host, ebtables }, found));
    } catch (err) {
      errors.push(err);
    }
    try {
      // An ADD killed while writing its record leaves a temp file next to
      // the state file: taking the lock sweeps it.
      await withState(inv.stateDir, () => {}, lock);
    } catch (err) {
      errors.push(err);
    }
    return errors;
  }

  async function cmdCheck(args: CmdArgs): Promise<void> {
    const inv = await begin(args);
    const { cfg, stateDir, ipam, key } = inv;
    checkPodNetns(kernel(), args.netns);
    const snapshot = await readState(stateDir);
    const recorded = snapshot.endpoints[key];
    const ep = recorded?.network === cfg.name ? recorded : undefined;
    const net = snapshot.networks[cfg.name];
    if (ep === undefined || net === undefined) {
      throw new CniError(
        PLUGIN_CODES.checkFailed,
        `CHECK failed for "${key}": no ${
          ep === undefined ? "endpoint" : "network"
        } recorded in "${stateDir}"`,
      );
    }
    const problems = await checkEndpoint(kernel(), ebtables, {
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
    await ipam.run("CHECK", args);
  }

  async function cmdStatus(args: CmdArgs): Promise<void> {
    const inv = await begin(args);
    const net = (await readState(inv.stateDir)).networks[inv.cfg.name];
    if (net !== undefined) {
      using host = kernel().host();
      const bridge = host.link(net.bridge);
      const master = host.link(net.master);
      if (bridge === undefined || master?.masterIndex !== bridge.index) {
        throw new CniError(
          CODES.notAvailable,
          `Network "${net.name}" cannot serve ADD: bridge "${net.bridge}" ${
            bridge === undefined
              ? "is missing"
              : `does not hold master "${net.master}"`
          }`,
        );
      }
    }
    try {
      await inv.ipam.run("STATUS", args);
    } catch (err) {
      if (
        err instanceof CniError &&
        (err.code === CODES.notAvailable ||
          err.code === CODES.notAvailableLimited)
      ) throw err;
      throw new CniError(
        CODES.notAvailable,
        `IPAM "${inv.cfg.ipam.type}" is not available`,
        { cause: err },
      );
    }
  }

  async function cmdGc(args: CmdArgs): Promise<void> {
    const inv = await begin(args);
    const { cfg, stateDir, ipam } = inv;
    const valid = gcAttachments(args.config, { required: true });
    const keep = new Set(
      valid.map((a) => endpointKey(a.containerID, a.ifname)),
    );
    const snapshot = await readState(stateDir);
    const stale = Object.entries(snapshot.endpoints).filter(([k, e]) =>
      e.network === cfg.name && !keep.has(k)
    );
    const net = snapshot.networks[cfg.name];
    const errors: unknown[] = [];
    const removed: string[] = [];
    using host = kernel().host();
    for (const [k, e] of stale) {
      const errs = await deleteEndpoint({ kernel: kernel(), host, ebtables }, {
        hostVeth: e.hostVeth,
        network: net,
        pod: e,
      });
      const delArgs: CmdArgs = {
        ...args,
        command: "DEL",
        containerId: e.containerId,
        ifName: e.ifName,
        netns: "",
        env: {
          ...args.env,
          CNI_COMMAND: "DEL",
          CNI_CONTAINERID: e.containerId,
          CNI_IFNAME: e.ifName,
          CNI_NETNS: "",
        },
      };
      try {
        await ipam.run("DEL", delArgs);
      } catch (err) {
        errs.push(err);
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
      lock,
    );
    // Leftovers of interrupted ADDs (no record): the runtime never runs GC
    // alongside ADD or DEL, so whatever no record accounts for is garbage.
    if (after.networks[cfg.name] !== undefined) {
      try {
        const found = findLeftovers(host, {
          state: after,
          network: cfg.name,
          prerouting: await ebtables.list("PREROUTING"),
        });
        errors.push(...await removeLeftovers({ host, ebtables }, found));
      } catch (err) {
        errors.push(err);
      }
    }
    try {
      await ipam.run("GC", args);
    } catch (err) {
      errors.push(err);
    }
    if (errors.length > 0) throw combine(errors, "GC left work undone");
  }

  return { cmdAdd, cmdDel, cmdCheck, cmdStatus, cmdGc };
}

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
    for (const cidr of ep.addresses) {
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
