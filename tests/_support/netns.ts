/**
 * Test namespaces: random `cnitest-` names, created with `ip netns add` and
 * released with `await using`. Kernel state is read back through `ip -j`,
 * the independent read path.
 *
 * @module
 */
import { requireRoot } from "./privilege.ts";

/** Runs a command and returns stdout; throws with stderr on failure. */
export async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`Command "${cmd} ${args.join(" ")}" failed: ${err}`);
  }
  return text;
}

/** Runs `ip` (optionally inside a netns) and returns stdout. */
export function ip(args: string[], netns?: string): Promise<string> {
  return run("ip", netns === undefined ? args : ["-n", netns, ...args]);
}

/** Runs `ip -j ...` inside a netns and parses the JSON. */
export async function ipJson<T = unknown>(
  args: string[],
  netns?: string,
): Promise<T> {
  const text = await ip(["-j", ...args], netns);
  return JSON.parse(text.trim() === "" ? "[]" : text) as T;
}

/** A random test prefix such as `cnitest-k3j9a`. */
export function testPrefix(): string {
  return `cnitest-${crypto.randomUUID().slice(0, 5)}`;
}

/** A test namespace that deletes itself. */
export class TestNetns implements AsyncDisposable {
  /** The namespace name. */
  readonly name: string;
  /** `/var/run/netns/<name>`. */
  readonly path: string;
  #closed = false;

  private constructor(name: string) {
    this.name = name;
    this.path = `/var/run/netns/${name}`;
  }

  /** Creates a namespace with loopback up. */
  static async create(name: string = testPrefix()): Promise<TestNetns> {
    requireRoot();
    await ip(["netns", "add", name]);
    await ip(["link", "set", "lo", "up"], name);
    return new TestNetns(name);
  }

  /** Runs a command inside the namespace. */
  exec(cmd: string, args: string[]): Promise<string> {
    return run("ip", ["netns", "exec", this.name, cmd, ...args]);
  }

  /** True when `ping -c1 -W1 target` from here succeeds. */
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
