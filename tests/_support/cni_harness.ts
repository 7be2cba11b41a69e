/**
 * Drives a CNI plugin as a runtime does: a child process with `CNI_*` env
 * and the config on stdin, optionally inside a netns; stdout parsed as the
 * one JSON document. Also a "node" fixture for azure-vnet (node netns whose
 * eth0 leads to an azure-host netns) and a state-versus-kernel check.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ip, ipJson, TestNetns } from "./netns.ts";

/** What one plugin run produced. */
export interface CniRun {
  /** The exit code (-1 when killed). */
  code: number;
  /** stdout parsed as JSON; undefined when stdout was empty. */
  json: Record<string, unknown> | undefined;
  /** stdout as text. */
  stdout: string;
  /** stderr as text. */
  stderr: string;
  /** The signal that ended it, if any. */
  signal: Deno.Signal | null;
  /** Wall time in ms. */
  ms: number;
}

/** How to run a plugin once. */
export interface CniRunOptions {
  /** The command line, such as `["dist/azure-vnet"]`. */
  argv: readonly string[];
  /** `CNI_COMMAND`. */
  command: string;
  /** The config, sent as JSON on stdin (a string is sent as is). */
  conf: unknown;
  /** More environment (`CNI_CONTAINERID`, state dir, …). */
  env?: Record<string, string>;
  /**
   * The runtime's own environment, in place of the default `PATH` and
   * `CNI_PATH` (nothing of those defaults is kept); `CNI_COMMAND` and `env`
   * still go on top. For tests of what a runtime passes (containerd's
   * `LD_LIBRARY_PATH`, an odd `PATH`).
   */
  baseEnv?: Readonly<Record<string, string>>;
  /** Run inside this netns (through `ip netns exec`). */
  netns?: string;
}

/** The environment {@link spawnCni} starts from without `baseEnv`. */
const DEFAULT_BASE_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  CNI_PATH: "/usr/lib/cni",
};

/** The repository's built launcher of azure-vnet. */
export const AZURE_VNET_DIST = new URL("../../dist/azure-vnet", import.meta.url)
  .pathname;

/** azure-vnet from source through `deno run`. */
export const AZURE_VNET_SRC = [
  Deno.execPath(),
  "run",
  "-A",
  "--quiet",
  new URL("../../cni/plugins/azure-vnet/main.ts", import.meta.url).pathname,
];

/**
 * Spawns a plugin; returns the child (to kill it) and its result.
 *
 * @param options Command line, command, config, env and netns.
 * @returns The child process and a promise of its {@link CniRun}.
 */
export function spawnCni(
  options: CniRunOptions,
): { child: Deno.ChildProcess; done: Promise<CniRun> } {
  const argv = options.netns === undefined
    ? [...options.argv]
    : ["ip", "netns", "exec", options.netns, ...options.argv];
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new TypeError("Empty argv");
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    clearEnv: true,
    env: {
      ...(options.baseEnv ?? DEFAULT_BASE_ENV),
      CNI_COMMAND: options.command,
      ...options.env,
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const done = (async () => {
    const w = child.stdin.getWriter();
    const body = typeof options.conf === "string"
      ? options.conf
      : JSON.stringify(options.conf);
    await w.write(new TextEncoder().encode(body)).catch(() => {});
    await w.close().catch(() => {});
    const o = await child.output();
    const stdout = new TextDecoder().decode(o.stdout);
    let json: Record<string, unknown> | undefined;
    if (stdout.trim() !== "") {
      json = JSON.parse(stdout) as Record<string, unknown>;
    }
    return {
      code: o.signal === null ? o.code : -1,
      json,
      stdout,
      stderr: new TextDecoder().decode(o.stderr),
      signal: o.signal,
      ms: performance.now() - t0,
    };
  })();
  return { child, done };
}

/**
 * Runs a plugin to completion.
 *
 * @param options Command line, command, config, env and netns.
 * @returns What it printed and its exit code.
 */
export function runCni(options: CniRunOptions): Promise<CniRun> {
  return spawnCni(options).done;
}

/** The first IP address (CIDR) of an ADD result. */
export function resultIp(run: CniRun): string | undefined {
  const ips = run.json?.ips as { address?: string }[] | undefined;
  return ips?.[0]?.address;
}

/**
 * An azure-vnet node: node netns (eth0 = `<subnet>.4/16`, default route via
 * the azure host `<subnet>.1`), an azure-host netns, a state/log directory.
 */
export class AzureNode implements AsyncDisposable {
  /** Everything to release. */
  readonly stack: AsyncDisposableStack = new AsyncDisposableStack();
  /** The node netns. */
  readonly node: TestNetns;
  /** The azure host netns (gateway). */
  readonly azure: TestNetns;
  /** The state and log dir. */
  readonly dir: string;
  /** `10.x` of the /16. */
  readonly prefix: string;
  /** The plugin's command line. */
  argv: readonly string[] = [AZURE_VNET_DIST];
  /** The runtime's environment ({@link CniRunOptions.baseEnv}); unset: default. */
  baseEnv: Readonly<Record<string, string>> | undefined = undefined;

  private constructor(
    parts: { node: TestNetns; azure: TestNetns; dir: string; prefix: string },
  ) {
    this.node = parts.node;
    this.azure = parts.azure;
    this.dir = parts.dir;
    this.prefix = parts.prefix;
  }

  /** Creates the node; `prefix` is `10.x`. */
  static async create(prefix: string): Promise<AzureNode> {
    const stack = new AsyncDisposableStack();
    try {
      const azure = stack.use(await TestNetns.create());
      const node = stack.use(await TestNetns.create());
      const dir = await Deno.makeTempDir({ prefix: "cnitest-rel-" });
      stack.defer(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
      await ip([
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        "ah0",
        "netns",
        azure.name,
      ], node.name);
      await ip(["addr", "add", `${prefix}.0.1/16`, "dev", "ah0"], azure.name);
      await ip(["link", "set", "ah0", "up"], azure.name);
      await ip(["addr", "add", `${prefix}.0.4/16`, "dev", "eth0"], node.name);
      await ip(["link", "set", "eth0", "up"], node.name);
      await ip(
        ["route", "add", "default", "via", `${prefix}.0.1`, "dev", "eth0"],
        node.name,
      );
      const n = new AzureNode({ node, azure, dir, prefix });
      n.stack.use(stack.move());
      return n;
    } catch (err) {
      await stack.disposeAsync();
      throw err;
    }
  }

  /** A network config with a static IPAM pool of `count` addresses. */
  conf(count: number, extra: Record<string, unknown> = {}): Record<
    string,
    unknown
  > {
    return {
      cniVersion: "1.0.0",
      name: "azure",
      type: "azure-vnet",
      mode: "bridge",
      bridge: "azure0",
      ipam: {
        type: "azure-vnet-ipam",
        environment: "static",
        subnet: `${this.prefix}.0.0/16`,
        primaryIp: `${this.prefix}.0.4`,
        addresses: Array.from(
          { length: count },
          (_, i) => `${this.prefix}.${1 + (i >> 8)}.${i & 255}`,
        ),
      },
      ...extra,
    };
  }

  /** Creates `n` pod namespaces. */
  async pods(n: number): Promise<TestNetns[]> {
    const out: TestNetns[] = [];
    for (let i = 0; i < n; i++) {
      out.push(this.stack.use(await TestNetns.create()));
    }
    return out;
  }

  /** The env of one attachment. */
  env(id: string, pod: TestNetns | undefined): Record<string, string> {
    return {
      CNI_CONTAINERID: id,
      CNI_NETNS: pod?.path ?? "",
      CNI_IFNAME: "eth0",
      AZURE_VNET_STATE_DIR: this.dir,
      AZURE_VNET_LOG_DIR: this.dir,
    };
  }

  /** Spawns the plugin inside the node netns. */
  spawn(
    command: string,
    conf: unknown,
    env: Record<string, string>,
  ): { child: Deno.ChildProcess; done: Promise<CniRun> } {
    return spawnCni({
      argv: this.argv,
      command,
      conf,
      env,
      netns: this.node.name,
      ...(this.baseEnv === undefined ? {} : { baseEnv: this.baseEnv }),
    });
  }

  /** Runs the plugin inside the node netns. */
  run(
    command: string,
    conf: unknown,
    env: Record<string, string>,
  ): Promise<CniRun> {
    return this.spawn(command, conf, env).done;
  }

  /** `<dir>/azure-vnet.json`. */
  get statePath(): string {
    return `${this.dir}/azure-vnet.json`;
  }

  /** `<dir>/azure-vnet-ipam.json`. */
  get ipamPath(): string {
    return `${this.dir}/azure-vnet-ipam.json`;
  }

  /** Releases everything. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stack.disposeAsync();
  }
}

interface StateEndpoint {
  containerId: string;
  ifName: string;
  hostVeth: string;
  addresses: string[];
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  try {
    return JSON.parse(await Deno.readTextFile(path));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return {};
    throw err;
  }
}

/**
 * Asserts that both state files parse and match the kernel of `n`: host
 * veths, permanent neighbours on the bridge, ebtables rules per pod IP, and
 * IPAM reservations are exactly the state's endpoints.
 *
 * @returns The endpoints' addresses (bare IPs) by `containerId/ifName`.
 */
export async function assertStateMatchesKernel(
  n: AzureNode,
): Promise<Map<string, string>> {
  const state = await readJson(n.statePath);
  const eps = Object.values(
    (state.endpoints ?? {}) as Record<string, StateEndpoint>,
  );
  const byKey = new Map<string, string>();
  for (const e of eps) {
    const a = e.addresses[0]?.split("/")[0];
    assert.ok(a !== undefined, `endpoint without address: ${e.containerId}`);
    byKey.set(`${e.containerId}/${e.ifName}`, a);
  }
  const ips = [...byKey.values()].sort();
  assert.equal(new Set(ips).size, ips.length, `duplicate IP in state ${ips}`);
  const links = await ipJson<{ ifname: string }[]>(
    ["link", "show"],
    n.node.name,
  );
  const veths = links.map((l) => l.ifname).filter((x) => x.startsWith("azv"))
    .sort();
  assert.deepEqual(veths, eps.map((e) => e.hostVeth).sort(), "host veths");
  const neigh = links.some((l) => l.ifname === "azure0")
    ? await ipJson<{ dst: string; state?: string[] }[]>(
      ["neigh", "show", "dev", "azure0", "nud", "permanent"],
      n.node.name,
    )
    : [];
  assert.deepEqual(
    neigh.map((x) => x.dst).filter((d) => d.includes(".")).sort(),
    ips,
    "permanent neighbours",
  );
  const eb = await n.node.exec("ebtables", ["-t", "nat", "-L"]);
  const ruleIps = [
    ...eb.matchAll(/--(?:ip|arp-ip)-dst (\d+\.\d+\.\d+\.\d+)/g),
  ].map((m) => m[1] ?? "").filter((x) => x !== `${n.prefix}.0.4`);
  for (const a of ips) {
    assert.equal(
      ruleIps.filter((x) => x === a).length,
      2,
      `ebtables rules for ${a}`,
    );
  }
  assert.deepEqual(
    [...new Set(ruleIps)].sort(),
    ips,
    "no ebtables rule for an IP outside state",
  );
  const ipam = await readJson(n.ipamPath);
  const held: string[] = [];
  const pools = (ipam.pools ?? {}) as Record<
    string,
    { addresses: Record<string, { containerId?: string; ifName?: string }> }
  >;
  for (const p of Object.values(pools)) {
    for (const [a, r] of Object.entries(p.addresses)) {
      if (r.containerId !== undefined) {
        held.push(a);
        assert.equal(
          byKey.get(`${r.containerId}/${r.ifName ?? "eth0"}`),
          a,
          `IPAM holds ${a} for ${r.containerId}`,
        );
      }
    }
  }
  assert.deepEqual(held.sort(), ips, "IPAM reservations");
  return byKey;
}
