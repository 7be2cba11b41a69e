/**
 * `azure-vnet` ADD: attach a pod to the network, creating the network on
 * the first ADD of a node.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type CmdArgs, CniError, PLUGIN_CODES, type Result } from "@vnet/cni";
import { inSubnet, looksLikeIpv6, networkOf } from "@vnet/address";
import { deferUndo } from "./_undo.ts";
import { AZURE_IPAM_TYPE, type AzureVnetConfig } from "./config.ts";
import {
  type AzureVnetContext,
  beginInvocation,
  type Invocation,
} from "./context.ts";
import { podLinkExists } from "./endpoint.ts";
import type { CreatedEndpoint } from "./endpoint.ts";
import type { KernelNs } from "./kernel.ts";
import { combineErrors, wrapKernel } from "./errors.ts";
import { deleteEndpoint, modeDriver, refuseModeChange } from "./mode.ts";
import { checkPodNetns } from "./pod_end.ts";
import type { EndpointRecord, NetworkRecord } from "./state.ts";
import { readState, updateState, withState } from "./state.ts";
import { adoptedAttachedHere } from "./adopt.ts";
import { restoreHostRules } from "./host_rules.ts";
import { withAttachmentLock } from "./attachment_lock.ts";

const log = getLogger(["azure-vnet"]);

/**
 * The CNI result of an endpoint, built here only: the host veth and the pod
 * interface, the pod's addresses and routes, and DNS (the config's, else
 * the IPAM's).
 *
 * @param cfg The validated config (its `cniVersion` is stamped).
 * @param spec The endpoint and the DNS the IPAM returned.
 * @returns The result in the internal (1.1.0) shape.
 */
function endpointResult(
  cfg: AzureVnetConfig,
  spec: { ep: CreatedEndpoint; ipamDns: Result["dns"] },
): Result {
  const { ep } = spec;
  const result: Result = {
    cniVersion: cfg.cniVersion,
    interfaces: [
      { name: ep.hostVeth, mac: ep.hostMac },
      { name: ep.ifName, mac: ep.podMac, sandbox: ep.netns, mtu: ep.mtu },
    ],
    ips: ep.ips.map((ip) => ({ ...ip, interface: 1 })),
    routes: ep.routes,
  };
  const dns = cfg.dns ?? spec.ipamDns;
  if (dns !== undefined) result.dns = dns;
  return result;
}

/** The recorded result with this config's DNS. */
function withDns(result: Result, dns: Result["dns"]): Result {
  const out: Result = { ...result };
  if (dns !== undefined) out.dns = dns;
  else delete out.dns;
  return out;
}

/**
 * Creates the network (or takes the one another ADD just recorded) under
 * the state lock: the only ADD step that holds the lock across kernel
 * work, and only while the network does not exist yet.
 */
async function ensureNetwork(
  ctx: AzureVnetContext,
  host: KernelNs,
  spec: { inv: Invocation; subnet: string; gateway: string },
): Promise<NetworkRecord> {
  const { cfg, stateDir } = spec.inv;
  const driver = modeDriver(cfg.mode);
  return await withState(stateDir, async (s) => {
    const have = s.state.networks[cfg.name];
    refuseModeChange(cfg, have);
    const lost = have === undefined ? undefined : driver.lost(host, have);
    if (have !== undefined && lost === undefined) return have;
    if (have !== undefined) {
      // The kernel lost the network (a reboot): build it again.
      log.info("Network {name}: {lost}, recreating it", {
        name: cfg.name,
        lost,
      });
    }
    const others = Object.values(s.state.networks).filter((n) =>
      n.name !== cfg.name
    );
    return await driver.createNetwork(
      { kernel: host, ebtables: ctx.ebtables },
      {
        name: cfg.name,
        bridge: cfg.bridge,
        master: cfg.master,
        subnet: spec.subnet,
        gateway: spec.gateway,
        others,
        commit: async (rec) => {
          s.state.networks[cfg.name] = rec;
          await s.save();
        },
      },
    );
  }, ctx.lock);
}

/** A repeated ADD's call, and the attachment recorded for it. */
interface RecordedAttachment {
  readonly args: CmdArgs;
  readonly inv: Invocation;
  readonly host: KernelNs;
  readonly recorded: EndpointRecord;
  readonly network: NetworkRecord | undefined;
}

/**
 * What keeps a recorded attachment from being returned as it is: CHECK of
 * its own parts in the netns asked for finds one missing (its pod end is
 * elsewhere, or a DEL killed halfway left the pod end but took its
 * neighbour), or the IPAM no longer holds its addresses (that DEL released
 * them).
 */
async function brokenAttachment(
  ctx: AzureVnetContext,
  spec: RecordedAttachment,
): Promise<string | undefined> {
  const { args, inv, recorded, network } = spec;
  if (network === undefined) return "its network is not recorded";
  const problems = await modeDriver(network.mode).checkEndpoint(
    { kernel: ctx.kernel(), ebtables: ctx.ebtables },
    { ep: recorded, net: network, netns: args.netns, scope: "endpoint" },
  );
  if (problems.length > 0) return problems.join("; ");
  const held = (await inv.ipam.holdings(args))?.own;
  const lost = held === undefined
    ? []
    : recorded.addresses.filter((a) => !held.includes(a));
  return lost.length > 0
    ? `the IPAM no longer holds ${lost.join(", ")}`
    : undefined;
}

/**
 * Returns the recorded result when the attachment is whole in the netns
 * asked for; otherwise releases its old host side and forgets the record,
 * so that ADD attaches it again. IPAM hands back the same reservation
 * when it still holds it.
 */
async function reuseOrRelease(
  ctx: AzureVnetContext,
  spec: RecordedAttachment,
): Promise<Result | undefined> {
  const { inv, host, recorded } = spec;
  const { cfg, key } = inv;
  const broken = await brokenAttachment(ctx, spec);
  if (broken === undefined) {
    log.info("ADD {key}: already attached, returning the recorded result", {
      key,
    });
    return withDns(recorded.result, cfg.dns ?? recorded.result.dns);
  }
  log.warn("ADD {key}: {broken}: re-attaching", { key, broken });
  const errors = await deleteEndpoint(
    { kernel: ctx.kernel(), host, ebtables: ctx.ebtables },
    { hostVeth: recorded.hostVeth, network: spec.network, pod: recorded },
  );
  if (errors.length > 0) {
    throw combineErrors(
      errors,
      `Cannot release the old attachment of "${key}"`,
    );
  }
  await withState(inv.stateDir, async (s) => {
    delete s.state.endpoints[key];
    await s.save();
  }, ctx.lock);
  return undefined;
}

/**
 * Removes the host veth an interrupted ADD (or DEL) of this very attachment
 * left: no valid record, yet the veth its name derives from exists.
 * Deleting it takes its pod end (`CNI_IFNAME`) along.
 */
function removeLeftoverVeth(host: KernelNs, inv: Invocation): void {
  if (host.link(inv.hostVeth) === undefined) return;
  log.warn("ADD {key}: removing leftover host veth {veth}", {
    key: inv.key,
    veth: inv.hostVeth,
  });
  try {
    host.delLinkSync(inv.hostVeth);
  } catch (err) {
    throw wrapKernel(`Cannot delete leftover veth "${inv.hostVeth}"`, err);
  }
}

/**
 * ADD: reserves the pod's address, creates the network when needed, then
 * the endpoint (veth, addresses, routes, neighbour, ebtables rules), and
 * records it. Idempotent: a repeated ADD in the same netns returns the
 * recorded result. Everything is rolled back on failure. Runs holding the
 * attachment's lock (`attachment_lock.ts`), so the reconcile leaves what
 * it made alone until it is recorded.
 *
 * @param ctx The context.
 * @param args The CNI call.
 * @returns The result in the internal shape (skel converts it).
 * @throws {CniError} 4 for a netns that is no pod's, 105 for an existing
 * interface, 107 for an address outside the network, IPAM and kernel codes.
 */
export async function cmdAdd(
  ctx: AzureVnetContext,
  args: CmdArgs,
): Promise<Result> {
  const inv = await beginInvocation(ctx, args);
  return await withAttachmentLock(
    { stateDir: inv.stateDir, hostVeth: inv.hostVeth, lock: ctx.lock },
    () => addAttachment(ctx, { args, inv }),
  );
}

/** ADD's work, under the attachment's lock. */
async function addAttachment(
  ctx: AzureVnetContext,
  call: { args: CmdArgs; inv: Invocation },
): Promise<Result> {
  const { args, inv } = call;
  const { cfg, stateDir, ipam, key } = inv;
  checkPodNetns(ctx.kernel(), args.netns);
  // Reads take no lock (writes are atomic renames): only changes do.
  const snapshot = await readState(stateDir);
  const recorded = snapshot.endpoints[key];
  if (recorded !== undefined && recorded.network !== cfg.name) {
    throw new CniError(
      PLUGIN_CODES.interfaceExists,
      `Interface "${args.ifName}" of container "${args.containerId}" is attached by network "${recorded.network}", not "${cfg.name}"`,
    );
  }
  using host = ctx.kernel().host();
  // A repeated ADD of a pod the Go azure-vnet attached (#17).
  const adopted = recorded ?? adoptedAttachedHere(ctx.kernel(), host, {
    args,
    state: snapshot,
    network: cfg.name,
  });
  if (adopted !== recorded && adopted !== undefined) {
    return withDns(adopted.result, cfg.dns ?? adopted.result.dns);
  }
  if (recorded !== undefined) {
    const again = await reuseOrRelease(ctx, {
      args,
      inv,
      host,
      recorded,
      network: snapshot.networks[cfg.name],
    });
    if (again !== undefined) return again;
  }
  removeLeftoverVeth(host, inv);
  if (
    podLinkExists(ctx.kernel(), { netns: args.netns, ifName: args.ifName })
  ) {
    throw new CniError(
      PLUGIN_CODES.interfaceExists,
      `Interface "${args.ifName}" already exists in netns "${args.netns}"`,
    );
  }
  const driver = modeDriver(cfg.mode);
  const seen = snapshot.networks[cfg.name];
  refuseModeChange(cfg, seen);
  await using stack = new AsyncDisposableStack();
  const live = seen !== undefined && driver.lost(host, seen) === undefined
    ? seen
    : undefined;
  // Our IPAM serves several subnets: ask for the live network's own.
  const subnet = live !== undefined && cfg.ipam.type === AZURE_IPAM_TYPE &&
      cfg.ipam.subnet === undefined
    ? { subnet: live.subnet }
    : {};
  // Bridge mode: the rules' listing exec runs while IPAM reserves the
  // address (transparent mode has no ebtables work). The reservation's
  // first file operation is under way before the spawn holds the thread.
  const reserving = ipam.add(args, subnet);
  const listing = cfg.mode === "bridge" ? ctx.ebtables.prefetch() : undefined;
  const ipamResult = await reserving;
  deferUndo(stack, { what: "IPAM release", run: () => ipam.release(args) });
  driver.refuseAddresses(ipamResult.ips ?? []);
  const v4 = (ipamResult.ips ?? []).find((ip) => !looksLikeIpv6(ip.address));
  if (v4 === undefined) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `IPAM "${cfg.ipam.type}" returned no IPv4 address`,
    );
  }
  const gateway = v4.gateway ??
    (ipamResult.routes ?? []).find((r) => r.gw !== undefined)?.gw;
  if (gateway === undefined) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `IPAM "${cfg.ipam.type}" returned no gateway for "${v4.address}"`,
    );
  }
  const net = live ?? await ensureNetwork(ctx, host, {
    inv,
    subnet: networkOf(v4.address),
    gateway,
  });
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
  const endpoints = { kernel: ctx.kernel(), host, ebtables: ctx.ebtables };
  const ep = await driver.createEndpoint(endpoints, {
    network: net,
    containerId: args.containerId,
    ifName: args.ifName,
    netns: args.netns,
    hostVeth: inv.hostVeth,
    mtu: cfg.mtu ?? host.link(net.master)?.mtu ?? net.masterMtu,
    ipam: ipamResult,
    ...(listing === undefined ? {} : { listing }),
    spoofCheck: cfg.spoofCheck,
  });
  deferUndo(stack, {
    what: "endpoint removal",
    run: async () => {
      const errors = await deleteEndpoint(endpoints, {
        hostVeth: ep.hostVeth,
        network: net,
        pod: ep,
      });
      if (errors.length > 0) {
        throw new AggregateError(errors, `Cannot remove endpoint "${key}"`);
      }
    },
  });
  // A network just built has its host rules; a live one may have lost some.
  if (live !== undefined) {
    await restoreHostRules(ctx, { inv, net: live, listing, by: `ADD ${key}` });
  }
  const result = endpointResult(cfg, { ep, ipamDns: ipamResult.dns });
  const { ips: _ips, routes: _routes, ...facts } = ep;
  const record: EndpointRecord = { ...facts, ipamRoute: ipam.name, result };
  await updateState(stateDir, (s) => {
    s.endpoints[key] = record;
  }, ctx.lock);
  stack.move();
  return result;
}
