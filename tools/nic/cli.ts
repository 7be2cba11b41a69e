/**
 * The NIC tool's command line: `provision`.
 *
 * @module
 */
import { parseCli } from "../_cli.ts";
import {
  DEFAULT_COUNT,
  parseCount,
  parseIpv6Count,
  provision,
} from "./provision.ts";

const USAGE =
  `usage: deno run -A tools/nic/main.ts provision [--count N (1-256, default ${DEFAULT_COUNT})]
  [--ipv6-count K (0-255, N+K at most 256; default: IPv6 ipconfigs unchanged)]
  [--nic-id ID] [--dry-run] [--state-dir DIR] [--force] [--imds-url URL]
  [--arm-endpoint URL] [--ca-file PEM]
       deno run -A tools/nic/main.ts -h|--help

--state-dir DIR  where azure-vnet-ipam.json is (default: AZURE_VNET_STATE_DIR,
                 else /var/run); a scale-down removes only ipconfigs whose
                 address it does not show in use, withdrawn from it first
--force          scale down even without a readable IPAM state file`;

const SPEC = {
  usage: USAGE,
  allowPositionals: true,
  options: {
    count: { type: "string", default: String(DEFAULT_COUNT) },
    "ipv6-count": { type: "string" },
    "nic-id": { type: "string" },
    "dry-run": { type: "boolean", default: false },
    "state-dir": { type: "string" },
    force: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
    "imds-url": { type: "string" },
    "arm-endpoint": { type: "string" },
    "ca-file": { type: "string" },
  },
} as const;

/** Where the CLI writes, and test knobs. */
export interface NicMainOptions {
  /** Receives result lines (default: stdout). */
  stdout?: ((line: string) => void) | undefined;
  /** Receives progress and error lines (default: stderr). */
  stderr?: ((line: string) => void) | undefined;
  /** LRO poll interval in ms (default 1000). */
  pollIntervalMs?: number | undefined;
}

function writer(file: { writeSync(p: Uint8Array): number }) {
  const enc = new TextEncoder();
  return (line: string) => {
    file.writeSync(enc.encode(line + "\n"));
  };
}

/**
 * Runs the NIC tool.
 *
 * Exit codes: 0 success (`-h`/`--help` too, which prints the usage on
 * stdout), 1 failure (refused scale-down, scale-set NIC, Azure error), 2
 * bad command line or count. The IPAM state dir is
 * `--state-dir`, else `AZURE_VNET_STATE_DIR`, else `/var/run`, as for the
 * state tool.
 *
 * @param args Command-line arguments.
 * @param options Output sinks and the LRO poll interval.
 * @returns The exit code.
 */
export async function main(
  args: readonly string[],
  options: NicMainOptions = {},
): Promise<number> {
  const out = options.stdout ?? writer(Deno.stdout);
  const err = options.stderr ?? writer(Deno.stderr);
  const parsed = parseCli(args, SPEC, { writeErr: (t) => err(t.trimEnd()) });
  if ("exitCode" in parsed) return parsed.exitCode;
  if (parsed.values.help) {
    out(USAGE);
    return 0;
  }
  if (
    parsed.positionals.length !== 1 || parsed.positionals[0] !== "provision"
  ) {
    err(`unknown command "${parsed.positionals.join(" ")}"\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  let count: number;
  let ipv6Count: number | undefined;
  try {
    count = parseCount(v.count);
    const k = v["ipv6-count"];
    ipv6Count = k === undefined ? undefined : parseIpv6Count(k, count);
  } catch (e) {
    err(`error: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  try {
    const result = await provision({
      count,
      ipv6Count,
      nicId: v["nic-id"],
      dryRun: v["dry-run"],
      stateDir: v["state-dir"] ?? Deno.env.get("AZURE_VNET_STATE_DIR") ??
        "/var/run",
      force: v.force,
      imdsUrl: v["imds-url"],
      armEndpoint: v["arm-endpoint"],
      caFile: v["ca-file"],
      pollIntervalMs: options.pollIntervalMs,
      progress: err,
    });
    for (const c of result.ipConfigurations) {
      out(`${c.name}\t${c.privateIPAddress}${c.primary ? "\tprimary" : ""}`);
    }
    return 0;
  } catch (e) {
    err(`error: ${e instanceof Error ? e.message : String(e)}`);
    return e instanceof RangeError ? 2 : 1;
  }
}
