/**
 * The unit tests' node of the Go azure-vnet v0.91
 * (`tests/testdata/acn-v0.91-node`) over the fake kernel and fake ebtables:
 * eth0 on the bridge azure0, the three pods' `azveth*` veths with their
 * MACs and their pod ends in netns of their own, the captured ebtables nat
 * rules, and the Go state files byte for byte in a temporary state dir.
 * The verbs then run over it with the real IPAM route (in process, or
 * exec'd through `CNI_PATH`), so adoption and what follows it are tested
 * without root.
 *
 * @module
 */
import {
  type CmdArgs,
  type CniCommand,
  type NetConf,
  parseCniArgs,
} from "@vnet/cni";
import { IPAM_STATE_FILE, readIpamState } from "@vnet/ipam";
import { type AzureVnetContext, createContext } from "./context.ts";
import { Ebtables } from "./ebtables.ts";
import { FakeEbtables } from "./_fake_ebtables.ts";
import { FakeKernel } from "./_fake_kernel.ts";

/** The fixture: the Go v0.91 node with three pods. */
const FIXTURE = new URL(
  "../../../tests/testdata/acn-v0.91-node/",
  import.meta.url,
);

/** The Go config of the fixture's node (network `azure`, bridge mode). */
export const ACN_CONFIG: Readonly<Record<string, unknown>> = {
  cniVersion: "1.1.0",
  name: "azure",
  type: "azure-vnet",
  mode: "bridge",
  bridge: "azure0",
  ipam: { type: "azure-vnet-ipam" },
};

/** One pod the Go plugin attached (pods.tsv). */
export interface AcnPod {
  /** Its full container ID. */
  readonly containerId: string;
  /** Its Go endpoint ID. */
  readonly endpointId: string;
  /** Its address (CIDR). */
  readonly ip: string;
  /** The Go host veth. */
  readonly hostVeth: string;
  /** The pod end's MAC. */
  readonly podMac: string;
  /** Its netns path in the fake kernel. */
  readonly netns: string;
}

/** What {@link acnNode} gives. */
export interface AcnNode extends AsyncDisposable {
  /** The state dir (holding the Go files until the first call). */
  readonly dir: string;
  /** The fake kernel. */
  readonly kernel: FakeKernel;
  /** The fake ebtables. */
  readonly rules: FakeEbtables;
  /** The verbs' context (real IPAM route, state dir {@link dir}). */
  readonly ctx: AzureVnetContext;
  /** The three pods. */
  readonly pods: readonly AcnPod[];
  /**
   * A CNI call of the node's config (plus `raw` and `config`) for `eth0`.
   *
   * @param command `CNI_COMMAND`.
   * @param containerId `CNI_CONTAINERID`.
   * @param options `netns` (default none), `config`: keys added.
   */
  args(
    command: CniCommand,
    containerId: string,
    options?: { netns?: string; config?: Record<string, unknown> },
  ): CmdArgs;
  /** The IPAM file's held addresses: IP -> container ID. */
  held(): Promise<Record<string, string>>;
  /** The recorded endpoint keys. */
  endpoints(): Promise<string[]>;
  /** The host's link names. */
  links(): string[];
  /** The PREROUTING rules naming `ip`. */
  rulesOf(ip: string): string[];
}

function fixtureText(name: string): string {
  return Deno.readTextFileSync(new URL(name, FIXTURE));
}

function fixturePods(): Omit<AcnPod, "netns">[] {
  const [, ...rows] = fixtureText("pods.tsv").trim().split("\n");
  return rows.map((r) => r.split("\t")).map((c) => ({
    containerId: c[2] ?? "",
    ip: c[3] ?? "",
    endpointId: c[4] ?? "",
    hostVeth: c[5] ?? "",
    podMac: c[8] ?? "",
  }));
}

/** The fixture's host link MACs by name. */
function fixtureMacs(): Map<string, string> {
  const links = JSON.parse(fixtureText("node-links.json")) as {
    ifname: string;
    address: string;
  }[];
  return new Map(links.map((l) => [l.ifname, l.address]));
}

/** Builds the fixture's node in `kernel` and `rules`; returns the pods. */
function buildNode(kernel: FakeKernel, rules: FakeEbtables): AcnPod[] {
  const macs = fixtureMacs();
  const host = kernel.hostNs;
  const mac = macs.get("eth0") ?? "";
  host.addLink("eth0", { mac });
  host.addBridge({ name: "azure0", mtu: 1500, mac });
  host.setMaster("eth0", "azure0");
  // v0.91 on a recent kernel left the node's address on both.
  host.addrAdd("eth0", "10.99.0.4/24");
  host.addrAdd("azure0", "10.99.0.4/24");
  host.routeReplace({ dst: "0.0.0.0/0", gw: "10.99.0.1", link: "azure0" });
  const pods = fixturePods().map((p, i) => {
    const netns = `/run/netns/acn-pod${i + 1}`;
    const ns = kernel.addNetns(netns);
    host.addVeth({
      name: p.hostVeth,
      peerName: "eth0",
      peerNetns: netns,
      mtu: 1500,
    });
    const hostEnd = host.linksByName.get(p.hostVeth);
    const podEnd = ns.linksByName.get("eth0");
    if (hostEnd === undefined || podEnd === undefined) {
      throw new Error(`veth ${p.hostVeth} not made`);
    }
    hostEnd.mac = macs.get(p.hostVeth) ?? hostEnd.mac;
    podEnd.mac = p.podMac;
    host.setMaster(p.hostVeth, "azure0");
    host.setUp(p.hostVeth);
    ns.setUp("lo");
    ns.setUp("eth0");
    ns.addrAdd("eth0", p.ip);
    ns.routeReplace({ dst: "0.0.0.0/0", gw: "10.99.0.1", link: "eth0" });
    return { ...p, netns };
  });
  rules.rules = fixtureText("ebtables-nat.txt").split("\n").filter((l) =>
    l.startsWith("-A ")
  ).map((l) => {
    const [, chain = "", ...args] = l.split(" ");
    return { chain, args: args.join(" ") };
  });
  return pods;
}

/**
 * The Go v0.91 node over fakes, with the verbs' context: the IPAM route is
 * the real one its config selects (`raw` may set `ipamExec`, `ipam`).
 *
 * @param options `raw`: keys added to every call's config; `path`: the
 * `CNI_PATH` directories (exec'd IPAM); `env`: more environment.
 * @returns The node; disposing it removes the state dir.
 */
export async function acnNode(
  options: {
    raw?: Record<string, unknown>;
    path?: readonly string[];
    env?: Record<string, string>;
  } = {},
): Promise<AcnNode> {
  const dir = await Deno.makeTempDir({ prefix: "acn-node-" });
  for (const f of ["azure-vnet.json", "azure-vnet-ipam.json"]) {
    await Deno.copyFile(new URL(f, FIXTURE), `${dir}/${f}`);
  }
  const kernel = new FakeKernel();
  const rules = new FakeEbtables();
  const pods = buildNode(kernel, rules);
  const ctx = createContext({
    stateDir: dir,
    kernel,
    ebtables: new Ebtables({ run: rules.run, restore: rules.restore }),
  });
  const path = [...options.path ?? []];
  return {
    dir,
    kernel,
    rules,
    ctx,
    pods,
    args(command, containerId, more = {}) {
      const config = {
        ...ACN_CONFIG,
        ...options.raw,
        ...more.config,
      } as NetConf;
      const netns = more.netns ?? "";
      return {
        command,
        containerId,
        netns,
        ifName: command === "GC" ? "" : "eth0",
        args: parseCniArgs(""),
        rawArgs: "",
        path,
        stdin: new TextEncoder().encode(JSON.stringify(config)),
        config,
        env: {
          ...options.env,
          CNI_COMMAND: command,
          CNI_CONTAINERID: containerId,
          CNI_NETNS: netns,
          CNI_IFNAME: command === "GC" ? "" : "eth0",
          CNI_PATH: path.join(":"),
          AZURE_VNET_STATE_DIR: dir,
          AZURE_VNET_LOG_DIR: dir,
        },
      };
    },
    async held() {
      const s = await readIpamState(`${dir}/${IPAM_STATE_FILE}`);
      const out: Record<string, string> = {};
      for (const p of Object.values(s?.pools ?? {})) {
        for (const [ip, r] of Object.entries(p.addresses)) {
          if (r.containerId !== undefined) out[ip] = r.containerId;
        }
      }
      return out;
    },
    async endpoints() {
      const s = JSON.parse(await Deno.readTextFile(`${dir}/azure-vnet.json`));
      return Object.keys(s.endpoints).sort();
    },
    links() {
      return [...kernel.hostNs.linksByName.keys()].sort();
    },
    rulesOf(ip) {
      return rules.matching(new RegExp(`\\b${ip.replaceAll(".", "\\.")}\\b`));
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}
