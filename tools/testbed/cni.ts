/**
 * Drives a CNI plugin as a runtime does: a child process with `CNI_*` env
 * and the config on stdin, optionally inside a netns; stdout parsed as the
 * one JSON document.
 *
 * @module
 */
import { type ProcessRun, spawnProcess } from "./process.ts";

/** What one plugin run produced. */
export interface CniRun extends ProcessRun {
  /** stdout parsed as JSON; undefined when stdout was empty. */
  json: Record<string, unknown> | undefined;
}

/** How to run a plugin once. */
export interface CniRunOptions {
  /** The command line, such as `[AZURE_VNET_DIST]`. */
  argv: readonly string[];
  /** `CNI_COMMAND`. */
  command: string;
  /** The config, sent as JSON on stdin (a string is sent as is). */
  conf: unknown;
  /** More environment (`CNI_CONTAINERID`, state dir, …). */
  env?: Readonly<Record<string, string>>;
  /**
   * The runtime's own environment, in place of the default `PATH` and
   * `CNI_PATH` (nothing of those defaults is kept); `CNI_COMMAND` and `env`
   * still go on top. For tests of what a runtime passes (containerd's
   * `LD_LIBRARY_PATH`, an odd `PATH`).
   */
  baseEnv?: Readonly<Record<string, string>>;
  /** Run inside this netns (through `ip netns exec`). */
  netns?: string;
  /**
   * Stdout that is not JSON gives `json: { unparsable: stdout }` instead of
   * a rejected promise (default false: a test fails on it).
   */
  lenientJson?: boolean;
}

/** The environment {@link spawnCni} starts from without `baseEnv`. */
const DEFAULT_BASE_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  CNI_PATH: "/usr/lib/cni",
};

/** The repository's built launcher of azure-vnet (`deno task build`). */
export const AZURE_VNET_DIST: string = new URL(
  "../../dist/azure-vnet",
  import.meta.url,
).pathname;

/** The repository's built launcher of the node agent (`deno task build`). */
export const AZURE_VNET_AGENT_DIST: string = new URL(
  "../../dist/azure-vnet-agent",
  import.meta.url,
).pathname;

/** azure-vnet from source through `deno run`. */
export const AZURE_VNET_SRC: readonly string[] = [
  Deno.execPath(),
  "run",
  "-A",
  "--quiet",
  new URL("../../cni/plugins/azure-vnet/main.ts", import.meta.url).pathname,
];

/** azure-vnet-ipam from source through `deno run`. */
export const AZURE_VNET_IPAM_SRC: readonly string[] = [
  Deno.execPath(),
  "run",
  "-A",
  "--quiet",
  new URL("../../ipam/plugins/azure-vnet-ipam/main.ts", import.meta.url)
    .pathname,
];

/**
 * Spawns a plugin; returns the child (to kill it) and its result.
 *
 * @param options Command line, command, config, env and netns.
 * @returns The child process and a promise of its {@link CniRun}; the
 * promise rejects with a `SyntaxError` when stdout is not JSON (unless
 * `lenientJson`).
 * @throws {TypeError} When `argv` is empty.
 *
 * @example Usage
 * ```ts ignore
 * import { AZURE_VNET_DIST, spawnCni } from "./cni.ts";
 * const { child, done } = spawnCni({
 *   argv: [AZURE_VNET_DIST],
 *   command: "VERSION",
 *   conf: { cniVersion: "1.0.0" },
 * });
 * const run = await done;
 * ```
 */
export function spawnCni(
  options: CniRunOptions,
): { child: Deno.ChildProcess; done: Promise<CniRun> } {
  const { child, done } = spawnProcess(options.argv, {
    clearEnv: true,
    env: {
      ...(options.baseEnv ?? DEFAULT_BASE_ENV),
      CNI_COMMAND: options.command,
      ...options.env,
    },
    stdin: typeof options.conf === "string"
      ? options.conf
      : JSON.stringify(options.conf),
    ...(options.netns === undefined ? {} : { netns: options.netns }),
  });
  return {
    child,
    done: done.then((run) => ({
      ...run,
      json: parseStdout(run.stdout, options.lenientJson ?? false),
    })),
  };
}

/** The one JSON document on stdout, undefined when there is none. */
function parseStdout(
  stdout: string,
  lenient: boolean,
): Record<string, unknown> | undefined {
  if (stdout.trim() === "") return undefined;
  try {
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch (err) {
    if (lenient) return { unparsable: stdout.trim() };
    throw err;
  }
}

/**
 * Runs a plugin to completion.
 *
 * @param options Command line, command, config, env and netns.
 * @returns What it printed and its exit code.
 * @throws {SyntaxError} When stdout is not JSON (unless `lenientJson`).
 *
 * @example Usage
 * ```ts ignore
 * import { AZURE_VNET_IPAM_SRC, runCni } from "./cni.ts";
 * const r = await runCni({
 *   argv: AZURE_VNET_IPAM_SRC,
 *   command: "ADD",
 *   conf: { cniVersion: "1.0.0", name: "azure", ipam: { type: "azure-vnet-ipam" } },
 *   env: { CNI_CONTAINERID: "c1", CNI_IFNAME: "eth0" },
 * });
 * ```
 */
export function runCni(options: CniRunOptions): Promise<CniRun> {
  return spawnCni(options).done;
}

/**
 * The first IP address (CIDR) of an ADD result.
 *
 * @param run A finished run.
 * @returns `ips[0].address`, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { resultIp } from "./cni.ts";
 * const json = { ips: [{ address: "10.1.0.5/24" }] };
 * assert.equal(resultIp({ json }), "10.1.0.5/24");
 * assert.equal(resultIp({ json: undefined }), undefined);
 * ```
 */
export function resultIp(
  run: Pick<CniRun, "json">,
): string | undefined {
  const ips = run.json?.ips as { address?: string }[] | undefined;
  return ips?.[0]?.address;
}
