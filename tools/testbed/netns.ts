/**
 * Named network namespaces with a random name prefix (`cnitest-k3j9a`),
 * created with `ip netns add`, released with `await using`, and the
 * kernel read back through `ip -j`: the independent read path of the tests
 * and the benchmark.
 *
 * @module
 */
import { run } from "./process.ts";

/**
 * Runs `ip` (inside a netns when `netns` is given) and returns stdout.
 *
 * @param args The `ip` arguments.
 * @param netns The netns name (`ip -n`).
 * @returns stdout.
 * @throws {Error} When `ip` fails.
 *
 * @example Usage
 * ```ts ignore
 * import { ip } from "./netns.ts";
 * await ip(["link", "set", "lo", "up"], "cnitest-k3j9a");
 * ```
 */
export function ip(args: readonly string[], netns?: string): Promise<string> {
  return run("ip", netns === undefined ? args : ["-n", netns, ...args]);
}

/**
 * Waits (up to 5 s) until duplicate address detection has finished on every
 * IPv6 address of a netns: until then the kernel neither sends from them nor
 * answers for them.
 *
 * @param netns The netns name.
 * @throws {Error} When an address is still tentative after 5 s.
 *
 * @example Usage
 * ```ts ignore
 * import { untilNoTentative } from "./netns.ts";
 * await untilNoTentative("cnitest-k3j9a");
 * ```
 */
export async function untilNoTentative(netns: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const out = await ip(["-6", "addr", "show", "tentative"], netns);
    if (out.trim() === "") return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`IPv6 addresses of netns "${netns}" stay tentative`);
}

/**
 * Runs `ip -j ...` (inside a netns when given) and parses the JSON; empty
 * output is `[]`.
 *
 * @param args The `ip` arguments after `-j`.
 * @param netns The netns name.
 * @returns The parsed output.
 * @throws {Error} When `ip` fails.
 *
 * @example Usage
 * ```ts ignore
 * import { ipJson } from "./netns.ts";
 * const links = await ipJson<{ ifname: string }[]>(["link", "show"]);
 * ```
 */
export async function ipJson<T = unknown>(
  args: readonly string[],
  netns?: string,
): Promise<T> {
  const text = await ip(["-j", ...args], netns);
  return JSON.parse(text.trim() === "" ? "[]" : text) as T;
}

/**
 * A random name with a tag saying whose it is, such as `cnitest-k3j9a`
 * (13 bytes for the default tag, so it fits an interface name too).
 *
 * @param tag The prefix before the dash.
 * @returns `<tag>-<5 random hex digits>`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { randomName } from "./netns.ts";
 * assert.match(randomName(), /^cnitest-[0-9a-f]{5}$/);
 * assert.match(randomName("cnibench"), /^cnibench-/);
 * ```
 */
export function randomName(tag: string = "cnitest"): string {
  return `${tag}-${crypto.randomUUID().slice(0, 5)}`;
}

/**
 * A named netns that deletes itself (`await using`). Requires root.
 *
 * @example Usage
 * ```ts ignore
 * import { Netns } from "./netns.ts";
 * await using ns = await Netns.create();
 * await ns.exec("ip", ["link", "show"]);
 * ```
 */
export class Netns implements AsyncDisposable {
  /** The namespace name. */
  readonly name: string;
  /** `/var/run/netns/<name>`. */
  readonly path: string;
  #closed = false;

  private constructor(name: string) {
    this.name = name;
    this.path = `/var/run/netns/${name}`;
  }

  /**
   * Creates a namespace with loopback up (`ip netns add`).
   *
   * @param name The name; default a random `cnitest-` one.
   * @returns The namespace.
   * @throws {Error} When `ip` fails (not root, name taken).
   */
  static async create(name: string = randomName()): Promise<Netns> {
    await ip(["netns", "add", name]);
    const ns = new Netns(name);
    await ip(["link", "set", "lo", "up"], name).catch(async (err) => {
      await ns[Symbol.asyncDispose]();
      throw err;
    });
    return ns;
  }

  /**
   * Names the netns of a running process (`ip netns attach`), with
   * loopback up. Disposing removes only the name; the netns lives on with
   * the process.
   *
   * @param pid The process, such as `Deno.pid`.
   * @param name The name; default a random `cnitest-` one.
   * @returns The namespace.
   * @throws {Error} When `ip` fails.
   */
  static async attach(
    pid: number,
    name: string = randomName(),
  ): Promise<Netns> {
    await ip(["netns", "attach", name, String(pid)]);
    const ns = new Netns(name);
    await ip(["link", "set", "lo", "up"], name).catch(async (err) => {
      await ns[Symbol.asyncDispose]();
      throw err;
    });
    return ns;
  }

  /**
   * Runs a command inside the namespace (`ip netns exec`).
   *
   * @param cmd The program.
   * @param args Its arguments.
   * @returns stdout.
   * @throws {Error} When it fails.
   */
  exec(cmd: string, args: readonly string[]): Promise<string> {
    return run("ip", ["netns", "exec", this.name, cmd, ...args]);
  }

  /**
   * Pings once from here (`ping -c1 -W1 target`).
   *
   * @param target The IPv4 address.
   * @returns Whether a reply came back.
   */
  async ping(target: string): Promise<boolean> {
    const out = await new Deno.Command("ip", {
      args: ["netns", "exec", this.name, "ping", "-c1", "-W1", target],
      stdout: "null",
      stderr: "null",
    }).output();
    return out.success;
  }

  /** Deletes the namespace (idempotent). */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await ip(["netns", "del", this.name]).catch(() => {});
  }
}

/** A link as `ip -j link show` prints it. */
export interface IpLink {
  /** Interface name. */
  ifname: string;
  /** MAC address. */
  address: string;
  /** MTU. */
  mtu: number;
  /** The bridge (or bond) it is enslaved to. */
  master?: string;
  /** Flags such as `UP`. */
  flags: string[];
}

/** An interface's addresses as `ip -j addr show` prints them. */
export interface IpAddr {
  /** Interface name. */
  ifname: string;
  /** The addresses. */
  // deno-lint-ignore camelcase
  addr_info: { family: string; local: string; prefixlen: number }[];
}

/** A route as `ip -j route show` prints it. */
export interface IpRoute {
  /** Destination, `default` for the default route. */
  dst: string;
  /** Next hop. */
  gateway?: string;
  /** Output device. */
  dev: string;
  /** Origin, such as `dhcp` or `kernel`. */
  protocol?: string;
  /** Metric. */
  metric?: number;
}

/** A neighbour entry as `ip -j neigh show` prints it. */
export interface IpNeigh {
  /** The neighbour's address. */
  dst: string;
  /** Device (absent when filtered by `dev`). */
  dev?: string;
  /** Its MAC. */
  lladdr?: string;
  /** NUD states, such as `PERMANENT`. */
  state: string[];
}

/**
 * The links of a netns. Equivalent to `ip -j -n NETNS link show`.
 *
 * @param netns The netns name.
 * @returns Every link.
 * @throws {Error} When `ip` fails.
 *
 * @example Usage
 * ```ts ignore
 * import { links } from "./netns.ts";
 * const names = (await links("cnitest-k3j9a")).map((l) => l.ifname);
 * ```
 */
export async function links(netns: string): Promise<IpLink[]> {
  return await ipJson<IpLink[]>(["link", "show"], netns);
}

/**
 * The IPv4 addresses of a device as `a.b.c.d/len`. Equivalent to
 * `ip -j -n NETNS -4 addr show dev DEV`.
 *
 * @param netns The netns name.
 * @param dev The device.
 * @returns Its addresses in kernel order.
 * @throws {Error} When `ip` fails (no such device).
 *
 * @example Usage
 * ```ts ignore
 * import { v4addrs } from "./netns.ts";
 * await v4addrs("cnitest-k3j9a", "eth0"); // ["10.77.0.4/24"]
 * ```
 */
export async function v4addrs(netns: string, dev: string): Promise<string[]> {
  const a = await ipJson<IpAddr[]>(["-4", "addr", "show", "dev", dev], netns);
  return a.flatMap((x) => x.addr_info.map((i) => `${i.local}/${i.prefixlen}`));
}

/**
 * The IPv4 routes of the main table. Equivalent to
 * `ip -j -n NETNS -4 route show`.
 *
 * @param netns The netns name.
 * @returns The routes.
 * @throws {Error} When `ip` fails.
 *
 * @example Usage
 * ```ts ignore
 * import { routes } from "./netns.ts";
 * const def = (await routes("cnitest-k3j9a")).find((r) => r.dst === "default");
 * ```
 */
export async function routes(netns: string): Promise<IpRoute[]> {
  return await ipJson<IpRoute[]>(["-4", "route", "show"], netns);
}

/**
 * The neighbour entries of a device. Equivalent to
 * `ip -j -n NETNS neigh show dev DEV [nud STATE]`.
 *
 * @param netns The netns name.
 * @param dev The device.
 * @param options `nud`: only entries in that state (`permanent`).
 * @returns The entries.
 * @throws {Error} When `ip` fails (no such device).
 *
 * @example Usage
 * ```ts ignore
 * import { neighbours } from "./netns.ts";
 * await neighbours("cnitest-k3j9a", "azure0", { nud: "permanent" });
 * ```
 */
export async function neighbours(
  netns: string,
  dev: string,
  options: { nud?: string } = {},
): Promise<IpNeigh[]> {
  const nud = options.nud === undefined ? [] : ["nud", options.nud];
  return await ipJson<IpNeigh[]>(["neigh", "show", "dev", dev, ...nud], netns);
}
