/**
 * The connectivity checks `up` runs and the table it prints. Pure: the pings
 * are injected.
 *
 * @module
 */
import type { NodeRecord, PodRecord } from "./record.ts";

/** The check kinds, in column order (IPv6's end in 6). */
export const CHECK_KINDS = [
  "same-node",
  "cross-node",
  "node",
  "gateway",
  "same-node6",
  "cross-node6",
  "node6",
  "gateway6",
  "served",
  "nic",
] as const;

/** One check kind. */
export type CheckKind = (typeof CHECK_KINDS)[number];

/** Who ran a pod's ADD: the node's agent, or the plugin process itself. */
export type ServedBy = "agent" | "in-process";

/**
 * One planned check: a ping, (`served`) who ran the pod's ADD, or (`nic`)
 * the pod's address is an ipconfig of its node's NIC in ARM (the warm pool
 * put it there, #16).
 */
export interface Check {
  /** The pod pinging. */
  readonly pod: PodRecord;
  /** What it checks. */
  readonly kind: CheckKind;
  /** The target address; for `served`, the expected {@link ServedBy}. */
  readonly target: string;
  /** A label for the target (pod or node name, "gateway"). */
  readonly targetName: string;
}

/** A check with its outcome. */
export interface CheckResult extends Check {
  /** True when the ping was answered. */
  readonly ok: boolean;
}

/** The ping kinds of one family, in column order. */
const PINGS = {
  4: ["same-node", "cross-node", "node", "gateway"],
  6: ["same-node6", "cross-node6", "node6", "gateway6"],
} as const;

/**
 * Plans the checks: for each pod, the next pod on its node, the pod with the
 * same index on the next node, its own node, and the gateway. Checks that
 * have no target (one pod per node, one node) are left out. With
 * `gateway6`, pods with an IPv6 address get the same four checks in IPv6
 * (`same-node6` ...) to the pods' and node's IPv6 addresses and `gateway6`.
 * With `servedBy`, each pod also gets a `served` check: its ADD ran there.
 *
 * @param pods The pods.
 * @param options The nodes, the gateways, and who should have run the ADDs.
 * @returns The checks, grouped by pod.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { planChecks } from "./report.ts";
 * const node = (index: number) => ({
 *   index, netns: `n${index}`, port: "", nicName: "", mac: "",
 *   primaryIp: `10.0.0.${4 + index}`, stateDir: "", logDir: "",
 * });
 * const pod = (n: number, ip: string) => ({
 *   name: `p${n}`, node: n, containerId: "", ifName: "eth0", ip, mac: "",
 * });
 * const checks = planChecks([pod(0, "10.0.0.9"), pod(1, "10.0.0.10")], {
 *   nodes: [node(0), node(1)], gateway: "10.0.0.1",
 * });
 * assert.equal(checks.length, 6); // no same-node partner: 3 checks per pod
 * ```
 */
export function planChecks(
  pods: readonly PodRecord[],
  options: {
    nodes: readonly NodeRecord[];
    gateway: string;
    /** The IPv6 gateway (dual-stack): plan the IPv6 checks too. */
    gateway6?: string;
    servedBy?: ServedBy;
    /** Plan a `nic` check per pod (the sandbox's warm pool, #16). */
    armNic?: boolean;
  },
): Check[] {
  const byNode = new Map<number, PodRecord[]>();
  for (const p of pods) {
    byNode.set(p.node, [...(byNode.get(p.node) ?? []), p]);
  }
  const nodeIdx = [...byNode.keys()].sort((a, b) => a - b);
  const checks: Check[] = [];
  for (const pod of pods) {
    const mates = byNode.get(pod.node) ?? [];
    const i = mates.indexOf(pod);
    const mate = mates.length > 1 ? mates[(i + 1) % mates.length] : undefined;
    const next = nodeIdx.length > 1
      ? nodeIdx[(nodeIdx.indexOf(pod.node) + 1) % nodeIdx.length]
      : undefined;
    const others = byNode.get(next ?? -1) ?? [];
    const peer = others[i % Math.max(1, others.length)];
    const node = options.nodes.find((n) => n.index === pod.node);
    const families = [
      { kinds: PINGS[4], gateway: options.gateway, of: (x?: HasIps) => x?.ip },
      ...(options.gateway6 === undefined || pod.ipv6 === undefined ? [] : [{
        kinds: PINGS[6],
        gateway: options.gateway6,
        of: (x?: HasIps) => x?.ipv6,
      }]),
    ];
    for (const f of families) {
      const [same, cross, toNode, toGateway] = f.kinds;
      const targets: [CheckKind, string | undefined, string | undefined][] = [
        [same, f.of(mate), mate?.name],
        [cross, f.of(peer), peer?.name],
        [
          toNode,
          f.of(node && { ip: node.primaryIp, ipv6: node.primaryIpv6 }),
          node?.netns,
        ],
        [toGateway, f.gateway, "gateway"],
      ];
      for (const [kind, target, targetName] of targets) {
        if (target === undefined || targetName === undefined) continue;
        checks.push({ pod, kind, target, targetName });
      }
    }
    if (options.servedBy !== undefined) {
      checks.push({
        pod,
        kind: "served",
        target: options.servedBy,
        targetName: `node${pod.node}`,
      });
    }
    if (options.armNic === true && node !== undefined) {
      checks.push({
        pod,
        kind: "nic",
        target: node.nicName,
        targetName: node.nicName,
      });
    }
  }
  return checks;
}

/** What holds an address of either family: a pod, or a node's primaries. */
interface HasIps {
  readonly ip: string;
  readonly ipv6?: string | undefined;
}

/**
 * Runs the checks with at most `parallel` in flight.
 *
 * @param checks The checks.
 * @param options The ping function (`netns`, `target`), who ran a pod's
 *   ADD (for `served` checks; without it they fail) and the concurrency.
 * @returns The results, in the order of `checks`.
 */
export async function runChecks(
  checks: readonly Check[],
  options: {
    ping: (netns: string, target: string) => Promise<boolean>;
    servedBy?: (pod: PodRecord) => Promise<ServedBy>;
    /** For `nic` checks: the pod's address is on that NIC in ARM. */
    onNic?: (pod: PodRecord, nicName: string) => Promise<boolean>;
    parallel?: number;
  },
): Promise<CheckResult[]> {
  const out: CheckResult[] = new Array(checks.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < checks.length) {
      const i = next++;
      const c = checks[i];
      if (c === undefined) continue;
      const ok = c.kind === "served"
        ? await options.servedBy?.(c.pod) === c.target
        : c.kind === "nic"
        ? await options.onNic?.(c.pod, c.target) === true
        : await options.ping(c.pod.netns ?? c.pod.name, c.target);
      out[i] = { ...c, ok };
    }
  }
  const n = Math.max(1, options.parallel ?? 4);
  await Promise.all(Array.from({ length: n }, worker));
  return out;
}

function pad(cols: string[][]): string[] {
  const widths =
    cols[0]?.map((_, i) => Math.max(...cols.map((r) => (r[i] ?? "").length))) ??
      [];
  return cols.map((r) =>
    r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd()
  );
}

/**
 * Renders the table: one row per pod with its node, IP, MAC and the outcome
 * of each check (`ok`, `FAIL`, or `-` when not planned; the IPv6, SERVED
 * and ARM NIC columns when any such check was planned, and an IPV6 column
 * when any pod has an IPv6 address), then the summary
 * line `PASS: n/n checks` or `FAIL: k of n checks failed`.
 *
 * @param pods The pods, in row order.
 * @param results The check results.
 * @returns The lines.
 */
export function renderTable(
  pods: readonly PodRecord[],
  results: readonly CheckResult[],
): string[] {
  const nodeName = (p: PodRecord) => `node${p.node}`;
  const always: readonly CheckKind[] = PINGS[4];
  const kinds = CHECK_KINDS.filter((k) =>
    always.includes(k) || results.some((r) => r.kind === k)
  );
  const heads: Record<CheckKind, string> = {
    "same-node": "POD(SAME)",
    "cross-node": "POD(CROSS)",
    node: "NODE",
    gateway: "GATEWAY",
    "same-node6": "POD6(SAME)",
    "cross-node6": "POD6(CROSS)",
    node6: "NODE6",
    gateway6: "GATEWAY6",
    served: "SERVED",
    nic: "ARM NIC",
  };
  const v6 = pods.some((p) => p.ipv6 !== undefined);
  const rows = [[
    "POD",
    "NODE",
    "IP",
    ...(v6 ? ["IPV6"] : []),
    "MAC",
    ...kinds.map((k) => heads[k]),
  ]];
  for (const pod of pods) {
    const cells = kinds.map((k) => {
      const r = results.find((x) => x.pod.name === pod.name && x.kind === k);
      return r === undefined ? "-" : `${r.ok ? "ok" : "FAIL"} ${r.target}`;
    });
    const ip6 = v6 ? [pod.ipv6 ?? "-"] : [];
    rows.push([pod.name, nodeName(pod), pod.ip, ...ip6, pod.mac, ...cells]);
  }
  const lines = pad(rows);
  lines.push(summaryLine(results));
  return lines;
}

/**
 * The summary line.
 *
 * @param results The check results.
 * @returns `PASS: n/n checks` or `FAIL: k of n checks failed`.
 */
export function summaryLine(results: readonly CheckResult[]): string {
  const failed = results.filter((r) => !r.ok).length;
  return failed === 0
    ? `PASS: ${results.length}/${results.length} checks`
    : `FAIL: ${failed} of ${results.length} checks failed`;
}
