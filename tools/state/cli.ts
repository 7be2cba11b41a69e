/**
 * `deno task state`: inspect and remove the azure-vnet network.
 *
 * - `teardown [--state-dir D] [--network NAME] [--force]` removes the
 *   bridge and host rules and gives the master its addresses and routes back.
 *   A network with endpoints is kept unless `--force` (then the endpoints'
 *   veths, neighbours and rules go too; IPAM reservations stay).
 * - `-h`, `--help` prints the usage to stdout.
 * - `show [--state-dir D] [--json] [--files] [--agent-url U]` prints, when
 *   the state dir's agent runs, its `/v1/endpoints` and `/v1/pool` (#16);
 *   otherwise (or with `--files`) networks, endpoints and the IPAM
 *   allocations.
 * - `gc [--state-dir D] [--dry-run] [--grace-ms N] [--json]` reconciles the
 *   state files with the kernel (see `gc.ts`).
 * - `repair [--state-dir D] [--file azure-vnet.json|azure-vnet-ipam.json]
 *   [--network NAME] [--bridge NAME] [--json]` rebuilds a corrupt state file
 *   (see `repair.ts`).
 * - `adopt [--state-dir D] [--dry-run] [--json]` converts the state files
 *   of the Go azure-vnet to ours (what the plugin does on its first call on
 *   such a node), keeping the Go files as `<file>.acn-backup`; with
 *   `--dry-run` it only shows what it would convert (#17).
 *
 * The verbs that only look (`show`, `gc --dry-run`, `adopt --dry-run`)
 * refuse a state dir that does not exist, and create nothing.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { flattenCause } from "@vnet/cni";
import { IPAM_STATE_FILE, readIpamState } from "@vnet/ipam";
// Deviation (reported to the lead): the plugin's teardown logic is reached
// through the plugin folder's own mod.ts, since `cni/mod.ts` stays pure.
import {
  adoptAcnState,
  type AdoptOutcome,
  netlinkKernel,
  readState,
  teardown,
} from "@vnet/azure-vnet";
import { parseCli } from "../_cli.ts";
import { formatAgentView, readAgentView } from "./agent_view.ts";
import { type GcReport, gcState } from "./gc.ts";
import {
  type RepairReport,
  repairState,
  type StateFileName,
} from "./repair.ts";

const log = getLogger(["tools", "state"]);

const USAGE = `usage:
  deno task state -h|--help
  deno task state teardown [--state-dir DIR] [--network NAME] [--force]
  deno task state show [--state-dir DIR] [--json] [--files] [--agent-url URL]
  deno task state gc [--state-dir DIR] [--dry-run] [--grace-ms N] [--json]
  deno task state repair [--state-dir DIR]
      [--file azure-vnet.json|azure-vnet-ipam.json] [--network NAME]
      [--bridge NAME] [--json]
  deno task state adopt [--state-dir DIR] [--dry-run] [--json]
`;

const VERBS = ["teardown", "show", "gc", "repair", "adopt"];
const FILES: readonly string[] = ["azure-vnet.json", "azure-vnet-ipam.json"];

const SPEC = {
  usage: USAGE,
  allowPositionals: true,
  options: {
    "state-dir": { type: "string" },
    network: { type: "string" },
    force: { type: "boolean" },
    json: { type: "boolean" },
    "dry-run": { type: "boolean" },
    "grace-ms": { type: "string" },
    file: { type: "string" },
    bridge: { type: "string" },
    files: { type: "boolean" },
    "agent-url": { type: "string" },
    help: { type: "boolean", short: "h" },
  },
} as const;

/** Where the tool writes. */
export interface StateCliIo {
  /** stdout text. */
  out?: (text: string) => void;
  /** stderr text. */
  err?: (text: string) => void;
}

function write(stream: { writeSync(p: Uint8Array): number }) {
  return (text: string): void => {
    const data = new TextEncoder().encode(text);
    let off = 0;
    while (off < data.length) off += stream.writeSync(data.subarray(off));
  };
}

/**
 * Runs the state tool.
 *
 * @param argv The arguments after the task name.
 * @param io Output sinks (default stdout/stderr).
 * @returns The exit code: 0 ok, 1 failure, 2 usage.
 *
 * @example Usage
 * ```ts ignore
 * const code = await runStateCli(["teardown", "--state-dir", "/var/run"]);
 * ```
 */
export async function runStateCli(
  argv: readonly string[],
  io: StateCliIo = {},
): Promise<number> {
  const out = io.out ?? write(Deno.stdout);
  const err = io.err ?? write(Deno.stderr);
  const parsed = parseCli(argv, SPEC, { writeErr: err });
  if ("exitCode" in parsed) return parsed.exitCode;
  if (parsed.values.help === true) {
    out(USAGE);
    return 0;
  }
  const [verb, ...rest] = parsed.positionals;
  if (rest.length > 0 || verb === undefined || !VERBS.includes(verb)) {
    err(`Unknown command "${[verb, ...rest].join(" ")}"\n${USAGE}`);
    return 2;
  }
  const stateDir = parsed.values["state-dir"] ??
    Deno.env.get("AZURE_VNET_STATE_DIR") ?? "/var/run";
  const v = parsed.values;
  const file = v.file;
  if (file !== undefined && !FILES.includes(file)) {
    err(`Unknown state file "${file}"\n${USAGE}`);
    return 2;
  }
  const graceMs = v["grace-ms"] === undefined
    ? undefined
    : Number(v["grace-ms"]);
  if (graceMs !== undefined && !(Number.isInteger(graceMs) && graceMs >= 0)) {
    err(`Invalid --grace-ms "${v["grace-ms"]}"\n${USAGE}`);
    return 2;
  }
  // A verb that only looks must not create what it looks at: a mistyped
  // --state-dir would otherwise get a lock file and report empty state.
  const looksOnly = verb === "show" ||
    (v["dry-run"] === true && (verb === "gc" || verb === "adopt"));
  try {
    const problem = looksOnly ? await stateDirProblem(stateDir) : undefined;
    if (problem !== undefined) {
      err(`Cannot ${verb}: ${problem}\n`);
      return 1;
    }
    if (verb === "gc") {
      const report = await gcState(stateDir, {
        dryRun: v["dry-run"] === true,
        ...(graceMs === undefined ? {} : { graceMs }),
      });
      out(
        v.json === true
          ? `${JSON.stringify(report, null, 2)}\n`
          : formatGc(report),
      );
      return report.failed ? 1 : 0;
    }
    if (verb === "adopt") {
      const outcome = await adoptAcnState(stateDir, {
        dryRun: v["dry-run"] === true,
        links: hostLinks,
      });
      out(
        v.json === true
          ? `${JSON.stringify(outcome ?? null, null, 2)}\n`
          : formatAdopt(outcome),
      );
      return 0;
    }
    if (verb === "repair") {
      const report = await repairState(stateDir, {
        ...(file === undefined ? {} : { file: file as StateFileName }),
        ...(v.network === undefined ? {} : { network: v.network }),
        ...(v.bridge === undefined ? {} : { bridge: v.bridge }),
      });
      out(
        v.json === true
          ? `${JSON.stringify(report, null, 2)}\n`
          : formatRepair(report),
      );
      return 0;
    }
    if (verb === "teardown") {
      const report = await teardown(stateDir, {
        ...(parsed.values.network === undefined
          ? {}
          : { network: parsed.values.network }),
        force: parsed.values.force === true,
      });
      for (const name of report.removed) out(`removed network ${name}\n`);
      for (const k of report.endpoints) out(`removed endpoint ${k}\n`);
      for (const note of report.notes) out(`note: ${note}\n`);
      for (const b of report.busy) {
        err(
          `network ${b.network} still has endpoints (${
            b.endpoints.join(", ")
          }); run DEL for them or use --force\n`,
        );
      }
      return report.busy.length > 0 ? 1 : 0;
    }
    // With the agent of this state dir running, its /v1 documents (#16).
    const view = v.files === true ? undefined : await readAgentView(stateDir, {
      ...(v["agent-url"] === undefined ? {} : { url: v["agent-url"] }),
    });
    if (view !== undefined) {
      out(
        v.json === true
          ? `${JSON.stringify({ source: "agent", ...view }, null, 2)}\n`
          : formatAgentView(view),
      );
      return 0;
    }
    const state = await readState(stateDir);
    const ipam = await readIpamState(`${stateDir}/${IPAM_STATE_FILE}`)
      .catch(() => undefined);
    if (parsed.values.json === true) {
      out(`${JSON.stringify({ network: state, ipam }, null, 2)}\n`);
      return 0;
    }
    out(formatShow(state, ipam));
    return 0;
  } catch (e) {
    log.error("state {verb} failed: {err}", { verb, err: flattenCause(e) });
    err(`${flattenCause(e)}\n`);
    return 1;
  }
}

/** Why `dir` is no state dir (missing, or no directory), or undefined. */
async function stateDirProblem(dir: string): Promise<string | undefined> {
  try {
    const st = await Deno.stat(dir);
    return st.isDirectory ? undefined : `state dir "${dir}" is no directory`;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return `no such state dir "${dir}"`;
    throw e;
  }
}

function formatShow(
  state: Awaited<ReturnType<typeof readState>>,
  ipam: unknown,
): string {
  const lines: string[] = [];
  lines.push("NETWORK\tBRIDGE\tMASTER\tMAC\tSUBNET\tGATEWAY\tADDRS");
  for (const n of Object.values(state.networks)) {
    lines.push(
      [
        n.name,
        n.mode === "bridge" ? n.bridge : `(${n.mode})`,
        n.master,
        n.masterMac,
        n.subnet,
        n.gateway,
        n.mode === "bridge" ? n.savedAddrs.join(",") : "-",
      ].join("\t"),
    );
  }
  lines.push("", "ENDPOINT\tNETWORK\tHOST VETH\tPOD MAC\tADDRESSES\tIPAM");
  for (const [k, e] of Object.entries(state.endpoints)) {
    lines.push(
      [k, e.network, e.hostVeth, e.podMac, e.addresses.join(","), e.ipamRoute]
        .join("\t"),
    );
  }
  lines.push("", "IPAM");
  lines.push(ipam === undefined ? "(none)" : JSON.stringify(ipam, null, 2));
  return `${lines.join("\n")}\n`;
}

/** Renders rows as aligned columns. */
function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => widths[i] = Math.max(widths[i] ?? 0, c.length));
  }
  return rows.map((r) =>
    r.map((c, i) => i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))
      .join("  ")
  ).join("\n") + "\n";
}

function formatGc(report: GcReport): string {
  if (report.actions.length === 0) return "nothing to collect\n";
  const rows: string[][] = [["KIND", "TARGET", "REASON", "OUTCOME"]];
  for (const a of report.actions) {
    rows.push([
      a.kind,
      a.target,
      a.reason,
      a.error === undefined ? a.outcome : `${a.outcome}: ${a.error}`,
    ]);
  }
  return table(rows);
}

/** The host's links for adoption (veth MACs, MTUs); none when unreadable. */
function hostLinks(): { name: string; mac: string; mtu: number }[] {
  try {
    using host = netlinkKernel().host();
    return host.links().map((l) => ({ name: l.name, mac: l.mac, mtu: l.mtu }));
  } catch (e) {
    log.warn("Cannot list the host's links: {err}", { err: flattenCause(e) });
    return [];
  }
}

function formatAdopt(outcome: AdoptOutcome | undefined): string {
  if (outcome === undefined) {
    return "nothing to adopt: no state file in the Go azure-vnet's format\n";
  }
  const r = outcome.report;
  const verb = outcome.dryRun ? "would convert" : "converted";
  const lines: string[] = [];
  for (
    const [file, go] of [
      ["azure-vnet.json", r.converted.network],
      ["azure-vnet-ipam.json", r.converted.ipam],
    ] as const
  ) {
    lines.push(
      go
        ? `${file}: Go azure-vnet ${r.version}: ${verb}`
        : `${file}: ours already (held addresses reconciled)`,
    );
  }
  lines.push("");
  const nets: string[][] = [[
    "NETWORK",
    "BRIDGE",
    "MASTER",
    "SUBNET",
    "GATEWAY",
  ]];
  for (const n of r.networks) {
    nets.push([n.name, n.bridge, n.master, n.subnet, n.gateway]);
  }
  const eps: string[][] = [[
    "ENDPOINT",
    "GO ENDPOINT ID",
    "HOST VETH",
    "POD MAC",
    "ADDRESSES",
  ]];
  for (const e of r.endpoints) {
    eps.push([
      e.key,
      e.endpointId,
      e.hostVeth,
      e.podMac,
      e.addresses.join(","),
    ]);
  }
  const holds: string[][] = [["HELD", "BY"]];
  for (const h of r.reservations) holds.push([h.ip, h.holder]);
  let text = `${lines.join("\n")}\n${table(nets)}\n${table(eps)}\n${
    table(holds)
  }`;
  for (const n of r.notes) text += `! ${n}\n`;
  for (const b of outcome.backups) text += `kept the Go file at ${b}\n`;
  return text;
}

function formatRepair(report: RepairReport): string {
  const lines: string[] = [];
  for (const f of report.files) {
    if (f.status === "ok") {
      lines.push(`${f.file}: parses; nothing to repair`);
    } else if (f.status === "missing") {
      lines.push(`${f.file}: missing; nothing to repair`);
    } else {
      lines.push(`${f.file}: rebuilt; corrupt copy kept at ${f.aside ?? "?"}`);
    }
    for (const i of f.items) lines.push(`  + ${i}`);
    for (const n of f.notes) lines.push(`  ! ${n}`);
  }
  return `${lines.join("\n")}\n`;
}
