/**
 * `deno task sandbox`: `up`, `status`, `exec`, `negative`, `down`.
 *
 * @module
 */
import { parseCli } from "../_cli.ts";
import type { SandboxMode } from "./record.ts";
import {
  defaultDir,
  sandboxDown,
  sandboxExec,
  sandboxMetrics,
  sandboxNegative,
  sandboxStatus,
  sandboxUp,
} from "./sandbox.ts";

const USAGE = `usage: deno task sandbox <command> [options]
  up [--nodes N] [--pods M] [--ip-count K] [--prefix P] [--dir D] [--skip-build]
     [--no-agent] [--warm MIN:MAX [--arm-faults]]
     [--mode bridge|transparent [--dual-stack]]
      build the fabric and N nodes (default 2), give each NIC K ipconfigs
      (default 8, primary included), start azure-vnet-agent in each node
      (--no-agent: none, the plugins run in process), create M pods per
      node (default 2) through the real azure-vnet, print the table;
      --warm: the agents keep MIN..MAX free addresses, growing the NICs
      through the ARM emulator (#16); --arm-faults: ARM answers 429 with
      Retry-After and 500 during the run; --mode: the conflist's mode
      (default bridge; transparent: the node routes, eth0 keeps its
      addresses); --dual-stack (transparent mode only): IPv6 too, every
      pod gets an address of each family and the checks run in both
  metrics [--prefix P] [--dir D]        each node agent's /metrics
  status [--prefix P] [--dir D]         what is running
  exec [--prefix P] POD|nodeN|fabric CMD...   run CMD in that netns
  negative [--node I] [--prefix P] [--dir D]
      bridge mode: remove node I's egress MAC SNAT rule; transparent mode:
      turn node I's forwarding off (then on again); show cross-node
      traffic touching node I fail
  down [--prefix P] [--dir D]           stop the agents, remove everything up
                                        created, verify
`;

const OPTIONS = {
  nodes: { type: "string" },
  pods: { type: "string" },
  "ip-count": { type: "string" },
  prefix: { type: "string" },
  dir: { type: "string" },
  node: { type: "string" },
  "skip-build": { type: "boolean" },
  "no-agent": { type: "boolean" },
  warm: { type: "string" },
  "arm-faults": { type: "boolean" },
  mode: { type: "string" },
  "dual-stack": { type: "boolean" },
} as const;

function write(lines: readonly string[]): void {
  Deno.stdout.writeSync(new TextEncoder().encode(lines.join("\n") + "\n"));
}

function writeErr(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text));
}

function warmBand(
  v: string | undefined,
): { min: number; max: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^(\d+):(\d+)$/.exec(v);
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (m === null || max < 1 || min > max || max > 255) {
    throw new RangeError(
      `Cannot use --warm "${v}": want MIN:MAX with 0 <= MIN <= MAX <= 255, MAX >= 1`,
    );
  }
  return { min, max };
}

function modeOf(v: string | undefined): SandboxMode {
  if (v === undefined || v === "bridge" || v === "transparent") {
    return v ?? "bridge";
  }
  throw new RangeError(`Cannot use --mode "${v}": want bridge or transparent`);
}

function count(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 64) {
    throw new RangeError(`Cannot use --${name} "${v}": want 1..64`);
  }
  return n;
}

/**
 * Runs the sandbox CLI.
 *
 * @param args The command line.
 * @returns The exit code: 0, 1 (failed checks or an error), 2 (usage).
 */
export async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  try {
    if (cmd === "exec") {
      const prefixed = rest[0] === "--prefix" || rest[0] === "--dir";
      const flag = prefixed ? rest[0] : undefined;
      const value = prefixed ? rest[1] ?? "" : "vsb";
      const dir = flag === "--dir" ? value : defaultDir(value);
      return await sandboxExec(dir, prefixed ? rest.slice(2) : rest);
    }
    const parsed = parseCli(rest, { usage: USAGE, options: OPTIONS });
    if ("exitCode" in parsed) return parsed.exitCode;
    const v = parsed.values;
    const prefix = v.prefix ?? "vsb";
    const dir = v.dir ?? defaultDir(prefix);
    switch (cmd) {
      case "up": {
        const mode = modeOf(v.mode);
        const dualStack = v["dual-stack"] ?? false;
        if (dualStack && mode !== "transparent") {
          writeErr(
            "sandbox up: --dual-stack needs --mode transparent: bridge mode is IPv4 only (the plugin refuses IPv6 in bridge mode with code 7)\n",
          );
          return 2;
        }
        const up = await sandboxUp({
          prefix,
          dir,
          nodes: count(v.nodes, 2, "nodes"),
          pods: count(v.pods, 2, "pods"),
          ipCount: count(v["ip-count"], 8, "ip-count"),
          skipBuild: v["skip-build"] ?? false,
          agent: v["no-agent"] !== true,
          ...(v.warm === undefined ? {} : { warm: warmBand(v.warm) }),
          armFaults: v["arm-faults"] ?? false,
          mode,
          dualStack,
          print: (l) => write([l]),
        });
        return up.results.every((r) => r.ok) ? 0 : 1;
      }
      case "metrics":
        for (const m of await sandboxMetrics(dir)) {
          write([`# ${m.node}`, m.text.trimEnd()]);
        }
        return 0;
      case "status":
        write(await sandboxStatus(dir));
        return 0;
      case "negative": {
        const neg = await sandboxNegative(dir, { node: Number(v.node ?? "0") });
        write(neg.lines);
        return neg.proven ? 0 : 1;
      }
      case "down":
        write(await sandboxDown(dir));
        return 0;
      default:
        writeErr(USAGE);
        return 2;
    }
  } catch (e) {
    writeErr(
      `sandbox ${cmd ?? ""}: ${e instanceof Error ? e.message : String(e)}\n`,
    );
    return 1;
  }
}
