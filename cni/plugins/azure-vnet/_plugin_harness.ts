/**
 * The unit tests' plugin harness: the verbs over a fake kernel, fake
 * ebtables and a fake IPAM route, and the CNI calls to drive them.
 *
 * @module
 */
import {
  type CmdArgs,
  type CniCommand,
  CniError,
  parseCniArgs,
  type Result,
} from "@vnet/cni";
import { createAzureVnetHandlers } from "./azure_vnet.ts";
import type { IpamHoldings, IpamRoute } from "./ipam_route.ts";
import { Ebtables } from "./ebtables.ts";
import { FakeEbtables } from "./_fake_ebtables.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { statePath, withState } from "./state.ts";

/** The pod netns of the harness. */
export const NETNS = "/run/netns/pod";

/** An IPAM route holding one address per attachment. */
export class FakeIpam implements IpamRoute {
  readonly name = "in-process";
  held = new Map<string, string>();
  calls: string[] = [];
  failDel = false;
  /** The subnet each ADD asked for. */
  subnets: (string | undefined)[] = [];
  /** Hand out addresses of 10.9.0.0/24 (gateway 10.9.0.1) instead. */
  otherSubnet = false;
  /** Hand out an IPv6 address too (fd00::<n>/64), as a dual-stack IPAM. */
  dualStack = false;
  add(args: CmdArgs, request: { subnet?: string }): Promise<Result> {
    this.calls.push(`ADD ${args.containerId}`);
    this.subnets.push(request.subnet);
    const net = this.otherSubnet ? "10.9.0" : "10.0.0";
    const key = `${args.containerId}/${args.ifName}`;
    const ip = this.held.get(key) ?? `${net}.${5 + this.held.size}`;
    this.held.set(key, ip);
    const result: Result = {
      cniVersion: "1.1.0",
      ips: [{ address: `${ip}/24`, gateway: `${net}.1` }],
      routes: [{ dst: "0.0.0.0/0", gw: `${net}.1` }],
    };
    if (this.dualStack) {
      result.ips?.push({
        address: `fd00::${ip.split(".")[3]}/64`,
        gateway: "fd00::1",
      });
      result.routes?.push({ dst: "::/0", gw: "fd00::1" });
    }
    return Promise.resolve(result);
  }
  release(
    args: CmdArgs,
    key?: { containerId: string; ifName: string },
  ): Promise<void> {
    const k = key ?? args;
    this.calls.push(`DEL ${k.containerId}`);
    if (this.failDel) {
      return Promise.reject(new CniError(11, "IPAM store busy"));
    }
    this.held.delete(`${k.containerId}/${k.ifName}`);
    return Promise.resolve();
  }
  holdings(args: CmdArgs): Promise<IpamHoldings | undefined> {
    // As the in-process route: what the attachment holds, and the others.
    const key = `${args.containerId}/${args.ifName}`;
    const ip = this.held.get(key);
    const others = new Set(
      [...this.held].filter(([k]) => k !== key).map(([, a]) => a),
    );
    if (ip === undefined) return Promise.resolve({ own: [], others });
    return Promise.resolve({
      own: this.dualStack ? [`${ip}/24`, `fd00::${ip.split(".")[3]}/64`] : [
        `${ip}/24`,
      ],
      others,
    });
  }
  check(): Promise<void> {
    return Promise.resolve();
  }
  status(): Promise<void> {
    return Promise.resolve();
  }
  collect(args: CmdArgs): Promise<void> {
    const valid = new Set(
      (args.config["cni.dev/valid-attachments"] ?? []).map((a) =>
        `${a.containerID}/${a.ifname}`
      ),
    );
    for (const k of [...this.held.keys()]) {
      if (!valid.has(k)) this.held.delete(k);
    }
    return Promise.resolve();
  }
}

/**
 * A CNI call of network `azure` (1.1.0, azure-vnet-ipam) for `eth0`.
 *
 * @param command `CNI_COMMAND`.
 * @param containerId `CNI_CONTAINERID`.
 * @param options `netns` (default {@link NETNS}), `config`: keys added to
 * the config (`mode`...).
 * @returns The call.
 */
export function pluginArgs(
  command: CniCommand,
  containerId: string,
  options: { netns?: string; config?: Record<string, unknown> } = {},
): CmdArgs {
  const config = {
    cniVersion: "1.1.0",
    name: "azure",
    type: "azure-vnet",
    ipam: { type: "azure-vnet-ipam" },
    // Off by default (a per-frame cost at scale): on here, so that every
    // test meets the rules it would meet with them.
    spoofCheck: true,
    ...options.config,
  };
  return {
    command,
    containerId,
    netns: options.netns ?? NETNS,
    ifName: "eth0",
    args: parseCniArgs(""),
    rawArgs: "",
    path: [],
    stdin: new TextEncoder().encode(JSON.stringify(config)),
    config,
    env: {},
  };
}

/**
 * A GC call listing `valid` (`eth0` each) as the valid attachments.
 *
 * @param valid The container ids to keep.
 * @param options `config`: keys added to the config.
 * @returns The call.
 */
export function pluginGcArgs(
  valid: string[],
  options: { config?: Record<string, unknown> } = {},
): CmdArgs {
  const args = pluginArgs("GC", "", { netns: "", ...options });
  const config = {
    ...args.config,
    "cni.dev/valid-attachments": valid.map((c) => ({
      containerID: c,
      ifname: "eth0",
    })),
  };
  return { ...args, containerId: "", ifName: "", config };
}

/**
 * A fresh fake kernel of a node: `eth0` (10.0.0.4/24, its DHCP default
 * route via .1), no bridge.
 *
 * @returns The kernel.
 */
export function fakeNode(): FakeKernel {
  const kernel = new FakeKernel();
  kernel.hostNs.addLink("eth0", { mac: "12:34:56:78:9a:bc" });
  kernel.hostNs.addrAdd("eth0", "10.0.0.4/24");
  kernel.hostNs.routeReplace({
    dst: "0.0.0.0/0",
    gw: "10.0.0.1",
    link: "eth0",
    protocol: "dhcp",
  });
  return kernel;
}

/** What {@link setupPlugin} gives. */
export interface PluginHarness extends AsyncDisposable {
  /** The state dir. */
  readonly dir: string;
  /** The fake kernel. */
  readonly kernel: FakeKernel;
  /** The pod netns ({@link NETNS}). */
  readonly pod: ReturnType<FakeKernel["addNetns"]>;
  /** The fake ebtables. */
  readonly rules: FakeEbtables;
  /** The fake IPAM route. */
  readonly ipam: FakeIpam;
  /** The verbs. */
  readonly handlers: ReturnType<typeof createAzureVnetHandlers>;
  /** The recorded endpoint keys. */
  endpoints(): Promise<string[]>;
}

/**
 * A node: `eth0` (10.0.0.4/24, default route via .1), the pod netns, the
 * verbs over fakes, a temporary state dir (removed on dispose).
 *
 * @returns The harness.
 */
export async function setupPlugin(): Promise<PluginHarness> {
  const dir = await Deno.makeTempDir();
  const kernel = fakeNode();
  const pod = kernel.addNetns(NETNS);
  const rules = new FakeEbtables();
  const ipam = new FakeIpam();
  const handlers = createAzureVnetHandlers({
    stateDir: dir,
    kernel,
    ebtables: new Ebtables({ run: rules.run, restore: rules.restore }),
    ipam,
  });
  return {
    dir,
    kernel,
    pod,
    rules,
    ipam,
    handlers,
    async endpoints(): Promise<string[]> {
      const st = JSON.parse(await Deno.readTextFile(statePath(dir)));
      return Object.keys(st.endpoints);
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/**
 * Forgets an endpoint record, as if its ADD was killed before writing it.
 *
 * @param dir The state dir.
 * @param key `containerId/ifName`.
 */
export async function forget(dir: string, key: string): Promise<void> {
  await withState(dir, async (s) => {
    delete s.state.endpoints[key];
    await s.save();
  });
}
