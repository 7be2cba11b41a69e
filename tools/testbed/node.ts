/**
 * The emulated azure-vnet node: a node netns whose `eth0` (`.4`, default
 * route `proto dhcp metric 100` via `.1`, as on an Azure VM) is a veth to
 * an "azure host" netns acting as the gateway (`.1`), a state and log
 * directory, pods in netns of their own, the plugin run as a runtime runs
 * it, and reads of the state files, ebtables and the state tool. Shared by
 * the privileged tests and `deno task bench`.
 *
 * Every kernel object it creates has a random `<tag>-` name (or lives in a
 * netns that has one) and goes when the node is disposed.
 *
 * @module
 */
import type { AzureVnetState } from "@vnet/azure-vnet";
import { AZURE_VNET_DIST, type CniRun, spawnCni } from "./cni.ts";
import { host } from "@vnet/address";
import { ip, Netns, randomName, untilNoTentative } from "./netns.ts";
import { type ProcessRun, spawnProcess } from "./process.ts";

const STATE_TOOL = new URL("../state/main.ts", import.meta.url).pathname;

/**
 * The address `index` places after the network address of an IPv4 subnet.
 *
 * @param subnet The subnet, such as `10.92.0.0/16`.
 * @param index The offset from the network address.
 * @returns The dotted address.
 * @throws {RangeError} When `index` is outside the subnet.
 * @throws {SyntaxError} When `subnet` is no IPv4 CIDR.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostAddress } from "./node.ts";
 * assert.equal(hostAddress("10.77.0.0/24", 4), "10.77.0.4");
 * assert.equal(hostAddress("10.92.0.0/16", 256 + 3), "10.92.1.3");
 * assert.throws(() => hostAddress("10.77.0.0/24", 256), RangeError);
 * ```
 */
export function hostAddress(subnet: string, index: number): string {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(subnet);
  const octets = m?.slice(1, 5).map(Number) ?? [];
  const len = Number(m?.[5]);
  if (octets.length !== 4 || octets.some((o) => o > 255) || !(len <= 32)) {
    throw new SyntaxError(`Cannot parse IPv4 subnet "${subnet}"`);
  }
  const size = 2 ** (32 - len);
  if (!Number.isInteger(index) || index < 0 || index >= size) {
    throw new RangeError(`Cannot take address ${index} of "${subnet}"`);
  }
  const base = octets.reduce((acc, o) => acc * 256 + o, 0);
  const v = base - (base % size) + index;
  return [24, 16, 8, 0].map((s) => Math.floor(v / 2 ** s) % 256).join(".");
}

/**
 * Runs `fn(0) … fn(count - 1)` with at most `limit` running at once.
 *
 * @param count How many.
 * @param fn The work for one index.
 * @param options `limit`: the parallelism (default 8).
 * @returns The results by index.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapLimit } from "./node.ts";
 * const out = await mapLimit(5, (i) => Promise.resolve(i * 2), { limit: 2 });
 * assert.deepEqual(out, [0, 2, 4, 6, 8]);
 * ```
 */
export async function mapLimit<T>(
  count: number,
  fn: (i: number) => Promise<T>,
  options: { limit?: number } = {},
): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < count) {
      const i = next++;
      results[i] = await fn(i);
    }
  }
  const workers = Math.min(options.limit ?? 8, count);
  await Promise.all(Array.from({ length: workers }, worker));
  return results;
}

/** How to build an {@link AzureNode}. */
export interface AzureNodeOptions {
  /** Name prefix of the netns and the directory (default `cnitest`). */
  tag?: string;
  /** The plugin's command line (default `[AZURE_VNET_DIST]`). */
  argv?: readonly string[];
  /** The runtime's environment (`baseEnv` of `spawnCni`; default its own). */
  baseEnv?: Readonly<Record<string, string>>;
  /**
   * The calling process's own netns is the node (named with
   * `ip netns attach`); plugins then run without `ip netns exec`, so a
   * benchmark times only the plugin. The caller must be in a netns of its
   * own (`unshare --net`): `eth0` and the bridge are made there.
   */
  attachCurrent?: boolean;
  /**
   * An IPv6 subnet too (dual-stack), such as `fd00:100::/64`: the azure
   * host gets host 1, `eth0` host 4 and a default route via host 1 (no DAD,
   * so they work at once).
   */
  ipv6Subnet?: string;
}

/**
 * An azure-vnet node: node netns (`eth0` = subnet `.4`, default route via
 * the azure host at `.1`), an azure-host netns, a state/log directory.
 * Requires root.
 *
 * @example Usage
 * ```ts ignore
 * import { AzureNode } from "./node.ts";
 * await using n = await AzureNode.create("10.92.0.0/16");
 * const [pod] = await n.pods(1);
 * const add = await n.run("ADD", n.conf(8), n.env("c1", pod));
 * ```
 */
export class AzureNode implements AsyncDisposable {
  /** Everything to release, in reverse order. */
  readonly stack: AsyncDisposableStack = new AsyncDisposableStack();
  /** The node netns. */
  readonly node: Netns;
  /** The azure host netns (gateway). */
  readonly azure: Netns;
  /** The state and log dir (`AZURE_VNET_STATE_DIR`, `AZURE_VNET_LOG_DIR`). */
  readonly dir: string;
  /** The node's subnet, such as `10.92.0.0/16`. */
  readonly subnet: string;
  /** The plugin's command line. */
  argv: readonly string[];
  /** The runtime's environment (`baseEnv` of `spawnCni`); unset: default. */
  baseEnv: Readonly<Record<string, string>> | undefined;
  readonly #tag: string;
  readonly #attached: boolean;

  private constructor(parts: {
    node: Netns;
    azure: Netns;
    dir: string;
    subnet: string;
    options: AzureNodeOptions;
  }) {
    this.node = parts.node;
    this.azure = parts.azure;
    this.dir = parts.dir;
    this.subnet = parts.subnet;
    this.argv = parts.options.argv ?? [AZURE_VNET_DIST];
    this.baseEnv = parts.options.baseEnv;
    this.#tag = parts.options.tag ?? "cnitest";
    this.#attached = parts.options.attachCurrent ?? false;
  }

  /**
   * Creates the node.
   *
   * @param subnet The node's IPv4 subnet, such as `10.77.0.0/24`.
   * @param options Name tag, plugin command line and environment.
   * @returns The node.
   * @throws {SyntaxError} When `subnet` is no IPv4 CIDR.
   * @throws {Error} When a command fails (everything made is released).
   */
  static async create(
    subnet: string,
    options: AzureNodeOptions = {},
  ): Promise<AzureNode> {
    const len = subnet.split("/")[1] ?? "";
    const gateway = hostAddress(subnet, 1);
    const nodeIp = hostAddress(subnet, 4);
    const tag = options.tag ?? "cnitest";
    const stack = new AsyncDisposableStack();
    try {
      const azure = stack.use(await Netns.create(randomName(tag)));
      const node = stack.use(
        options.attachCurrent
          ? await Netns.attach(Deno.pid, randomName(tag))
          : await Netns.create(randomName(tag)),
      );
      const dir = await Deno.makeTempDir({ prefix: `${tag}-node-` });
      stack.defer(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
      // Deleting the azure netns also deletes eth0, its veth peer.
      await ip(
        ["link", "add", "eth0", "type", "veth", "peer", "name", "ah0"]
          .concat(["netns", azure.name]),
        node.name,
      );
      await ip(["addr", "add", `${gateway}/${len}`, "dev", "ah0"], azure.name);
      await ip(["link", "set", "ah0", "up"], azure.name);
      await ip(["addr", "add", `${nodeIp}/${len}`, "dev", "eth0"], node.name);
      await ip(["link", "set", "eth0", "up"], node.name);
      await ip(
        ["route", "add", "default", "via", gateway, "dev", "eth0"]
          .concat(["proto", "dhcp", "metric", "100"]),
        node.name,
      );
      if (options.ipv6Subnet !== undefined) {
        const v6 = options.ipv6Subnet;
        const [gw6, node6] = [host(v6, 1), host(v6, 4)];
        const len6 = v6.split("/")[1] ?? "64";
        await ip(
          ["-6", "addr", "add", `${gw6}/${len6}`, "dev", "ah0", "nodad"],
          azure.name,
        );
        await ip(
          ["-6", "addr", "add", `${node6}/${len6}`, "dev", "eth0", "nodad"],
          node.name,
        );
        await ip(
          ["-6", "route", "add", "default", "via", gw6, "dev", "eth0"],
          node.name,
        );
        // The link-local addresses run DAD for about a second; until then
        // neighbour discovery on the link stalls the first packets.
        for (const ns of [node.name, azure.name]) await untilNoTentative(ns);
      }
      const n = new AzureNode({ node, azure, dir, subnet, options });
      n.stack.use(stack.move());
      return n;
    } catch (err) {
      await stack.disposeAsync();
      throw err;
    }
  }

  /**
   * An address of the subnet: `addr(1)` is the gateway, `addr(4)` the node.
   *
   * @param index The offset from the network address.
   * @returns The dotted address.
   * @throws {RangeError} When outside the subnet.
   */
  addr(index: number): string {
    return hostAddress(this.subnet, index);
  }

  /**
   * `count` addresses for a static pool, from the subnet's second /24 on
   * (`10.x.1.0`, `10.x.1.1`, …; a /16 subnet).
   *
   * @param count How many.
   * @returns The addresses.
   * @throws {RangeError} When the subnet is too small.
   */
  pool(count: number): string[] {
    return Array.from({ length: count }, (_, i) => this.addr(256 + i));
  }

  /**
   * A static azure-vnet-ipam config over `addresses` (primary IP `.4`).
   *
   * @param addresses The NIC's addresses.
   * @returns The `ipam` object.
   */
  staticIpam(addresses: readonly string[]): Record<string, unknown> {
    return {
      type: "azure-vnet-ipam",
      environment: "static",
      subnet: this.subnet,
      primaryIp: this.addr(4),
      addresses: [...addresses],
    };
  }

  /**
   * A 1.0.0 bridge-mode network config `azure` on bridge `azure0`.
   *
   * @param ipam A static pool of that many addresses ({@link pool}), or
   * the `ipam` object itself.
   * @param extra Keys added or replaced (`cniVersion`, `ipamExec`, …).
   * @returns The config.
   */
  conf(
    ipam: number | Record<string, unknown>,
    extra: Record<string, unknown> = {},
  ): Record<string, unknown> {
    return {
      cniVersion: "1.0.0",
      name: "azure",
      type: "azure-vnet",
      mode: "bridge",
      bridge: "azure0",
      ipam: typeof ipam === "number" ? this.staticIpam(this.pool(ipam)) : ipam,
      ...extra,
    };
  }

  /**
   * Creates one pod namespace (released with the node).
   *
   * @returns The pod.
   */
  async pod(): Promise<Netns> {
    // Names are random and short (5 hex digits): with a thousand pods (the
    // benchmark) one is taken now and then, so take another.
    for (let attempt = 1;; attempt++) {
      try {
        return this.stack.use(await Netns.create(randomName(this.#tag)));
      } catch (err) {
        if (attempt >= 5 || !/File exists/.test(String(err))) throw err;
      }
    }
  }

  /**
   * Creates `count` pod namespaces (released with the node).
   *
   * @param count How many.
   * @returns The pods, in creation order.
   */
  async pods(count: number): Promise<Netns[]> {
    return await mapLimit(count, () => this.pod());
  }

  /**
   * The env of one attachment, with the node's state and log dir.
   *
   * @param id `CNI_CONTAINERID`.
   * @param pod Its netns (`CNI_NETNS`); undefined gives an empty one.
   * @returns `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME=eth0` and the dirs.
   */
  env(id: string, pod: Netns | undefined): Record<string, string> {
    return {
      CNI_CONTAINERID: id,
      CNI_NETNS: pod?.path ?? "",
      CNI_IFNAME: "eth0",
      ...this.#dirs(),
    };
  }

  /**
   * Spawns the plugin inside the node netns. The state and log dir are the
   * node's unless `env` sets them.
   *
   * @param command `CNI_COMMAND`.
   * @param conf The config (stdin).
   * @param env More environment, usually {@link env}.
   * @returns The child and the promise of its run.
   */
  spawn(
    command: string,
    conf: unknown,
    env: Readonly<Record<string, string>>,
  ): { child: Deno.ChildProcess; done: Promise<CniRun> } {
    return spawnCni({
      argv: this.argv,
      command,
      conf,
      env: { ...this.#dirs(), ...env },
      ...this.#where(),
      ...(this.baseEnv === undefined ? {} : { baseEnv: this.baseEnv }),
    });
  }

  /**
   * Runs the plugin inside the node netns (see {@link spawn}).
   *
   * @param command `CNI_COMMAND`.
   * @param conf The config (stdin).
   * @param env More environment, usually {@link env}.
   * @returns The finished run.
   */
  run(
    command: string,
    conf: unknown,
    env: Readonly<Record<string, string>>,
  ): Promise<CniRun> {
    return this.spawn(command, conf, env).done;
  }

  /**
   * Runs `deno task state` (tools/state) inside the node netns with
   * `--state-dir` set to the node's dir and an environment of that dir
   * only.
   *
   * @param args The subcommand and its flags, such as `["gc", "--dry-run"]`.
   * @returns Its exit code and output.
   */
  stateTool(args: readonly string[]): Promise<ProcessRun> {
    return spawnProcess(
      [Deno.execPath(), "run", "-A", STATE_TOOL, ...args]
        .concat(["--state-dir", this.dir]),
      { clearEnv: true, env: this.#dirs(), ...this.#where() },
    ).done;
  }

  /** `<dir>/azure-vnet.json`. */
  get statePath(): string {
    return `${this.dir}/azure-vnet.json`;
  }

  /** `<dir>/azure-vnet-ipam.json`. */
  get ipamPath(): string {
    return `${this.dir}/azure-vnet-ipam.json`;
  }

  /**
   * The parsed `azure-vnet.json`.
   *
   * @returns The state.
   * @throws {Deno.errors.NotFound} Before the first ADD.
   * @throws {SyntaxError} When it does not parse.
   */
  async state(): Promise<AzureVnetState> {
    return JSON.parse(await Deno.readTextFile(this.statePath));
  }

  /**
   * The text of `azure-vnet-ipam.json`.
   *
   * @returns The file's text.
   * @throws {Deno.errors.NotFound} Before the first ADD.
   */
  async ipamState(): Promise<string> {
    return await Deno.readTextFile(this.ipamPath);
  }

  /**
   * The node's nat table. Equivalent to `ebtables -t nat -L` in the node.
   *
   * @returns The listing.
   */
  async ebtables(): Promise<string> {
    return await this.node.exec("ebtables", ["-t", "nat", "-L"]);
  }

  /** Releases pods, dir and netns. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stack.disposeAsync();
  }

  #dirs(): Record<string, string> {
    return { AZURE_VNET_STATE_DIR: this.dir, AZURE_VNET_LOG_DIR: this.dir };
  }

  #where(): { netns?: string } {
    return this.#attached ? {} : { netns: this.node.name };
  }
}
