/**
 * The agent's Prometheus metrics (#16), with `prom-client`. Only the agent
 * loads this module; the plugins' entry points import `@vnet/forward` alone
 * (docs/STYLE.md section 2).
 *
 * | metric | type | labels |
 * | --- | --- | --- |
 * | `azure_vnet_cni_requests_total` | counter | `command`, `code` |
 * | `azure_vnet_cni_request_duration_seconds` | histogram | `command` |
 * | `azure_vnet_ipam_addresses` | gauge | `family`, `state` |
 * | `azure_vnet_arm_requests_total` | counter | `operation`, `result` |
 * | `azure_vnet_state_write_duration_seconds` | histogram | none |
 * | `azure_vnet_agent_up` | gauge | none |
 * | `azure_vnet_agent_ebtables_mismatch` | gauge | none |
 * | `azure_vnet_agent_ready` | gauge | none |
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ipFamily } from "@vnet/address";
import { readIpamState } from "@vnet/ipam";
import type { IpamState } from "@vnet/ipam";
import { addressStateOf } from "./introspect.ts";

/** Latency buckets of a CNI request, in seconds. */
const REQUEST_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
  30,
];

/** Latency buckets of a state file write (create, write, fsync, rename). */
const WRITE_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  1,
];

/** The address states of `azure_vnet_ipam_addresses`. */
export type AddressState = ReturnType<typeof addressStateOf>;

/**
 * Counts a state's addresses by state: `stale` (held, no longer on the
 * NIC), `in_use` (held) and `free`.
 *
 * @param state The IPAM state, or undefined when none exists.
 * @param options `family`: count only the pools of that family (default:
 * every pool).
 * @returns The three counts.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { countAddresses } from "./metrics.ts";
 * assert.deepEqual(countAddresses(undefined), { "in_use": 0, free: 0, stale: 0 });
 * ```
 */
export function countAddresses(
  state: IpamState | undefined,
  options: { family?: 4 | 6 } = {},
): Record<AddressState, number> {
  const out = { "in_use": 0, free: 0, stale: 0 };
  for (const pool of Object.values(state?.pools ?? {})) {
    const family = ipFamily(pool.subnet.split("/")[0] ?? "");
    if (options.family !== undefined && family !== options.family) continue;
    for (const rec of Object.values(pool.addresses)) out[addressStateOf(rec)]++;
  }
  return out;
}

/** Options of {@link AgentMetrics}. */
export interface AgentMetricsOptions {
  /** The IPAM state's path, read (unlocked) at each scrape. */
  readonly ipamStatePath: string;
  /** Reads the IPAM state; default `readIpamState` (tests inject). */
  readonly readState?: (path: string) => Promise<IpamState | undefined>;
  /**
   * Whether the agent is ready (`readiness.ts`), read at each scrape;
   * default always.
   */
  readonly ready?: () => boolean;
}

/**
 * The agent's metrics in their own registry.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AgentMetrics } from "./metrics.ts";
 * const m = new AgentMetrics({ ipamStatePath: "/nonexistent/ipam.json" });
 * m.observeRequest({ command: "ADD", code: 0, seconds: 0.02 });
 * const text = await m.render();
 * assert.match(text, /azure_vnet_cni_requests_total\{command="ADD",code="0"\} 1/);
 * ```
 */
export class AgentMetrics {
  /** The registry (all eight metrics, nothing else). */
  readonly registry: Registry;
  #requests: Counter<"command" | "code">;
  #duration: Histogram<"command">;
  #arm: Counter<"operation" | "result">;
  #writes: Histogram;
  #up: Gauge;
  #ebtablesMismatch: Gauge;

  /**
   * Registers the metrics; the address gauge reads the IPAM state at each
   * scrape.
   *
   * @param options The IPAM state path and its reader.
   */
  constructor(options: AgentMetricsOptions) {
    const registry = new Registry();
    this.registry = registry;
    const read = options.readState ?? readIpamState;
    this.#requests = new Counter({
      name: "azure_vnet_cni_requests_total",
      help:
        "CNI requests the agent answered, by CNI_COMMAND and exit code (0, or the CNI error code)",
      labelNames: ["command", "code"],
      registers: [registry],
    });
    this.#duration = new Histogram({
      name: "azure_vnet_cni_request_duration_seconds",
      help:
        "Time from a forwarded request's arrival to its reply, by CNI_COMMAND",
      labelNames: ["command"],
      buckets: REQUEST_BUCKETS,
      registers: [registry],
    });
    new Gauge({
      name: "azure_vnet_ipam_addresses",
      help:
        "Addresses in the IPAM pools, by family and state (in_use, free, stale: held but no longer on the NIC)",
      labelNames: ["family", "state"],
      registers: [registry],
      async collect() {
        let state: IpamState | undefined;
        try {
          state = await read(options.ipamStatePath);
        } catch {
          // A corrupt file: report nothing rather than a wrong number.
          this.reset();
          return;
        }
        // IPv4 always; IPv6 while the node has an IPv6 pool (dual-stack):
        // a series of pools that are gone must not keep its last value.
        this.reset();
        const v6 = Object.values(state?.pools ?? {}).some((p) =>
          ipFamily(p.subnet.split("/")[0] ?? "") === 6
        );
        for (const family of v6 ? [4, 6] as const : [4] as const) {
          const counts = countAddresses(state, { family });
          for (const [s, n] of Object.entries(counts)) {
            this.set({ family: `ipv${family}`, state: s }, n);
          }
        }
      },
    });
    this.#arm = new Counter({
      name: "azure_vnet_arm_requests_total",
      help:
        "Requests to Azure Resource Manager by the warm pool, by operation and result (ok, throttled, server_error, client_error, conflict: a stale etag, operation_failed: ARM failed an accepted update, auth_error: no managed identity token, imds_error: the NIC's discovery through IMDS, network_error: no answer, other_error)",
      labelNames: ["operation", "result"],
      registers: [registry],
    });
    this.#writes = new Histogram({
      name: "azure_vnet_state_write_duration_seconds",
      help:
        "Atomic state file writes (create, write, fsync, rename) in the agent",
      buckets: WRITE_BUCKETS,
      registers: [registry],
    });
    this.#up = new Gauge({
      name: "azure_vnet_agent_up",
      help: "1 while the agent serves",
      registers: [registry],
    });
    this.#up.set(1);
    this.#ebtablesMismatch = new Gauge({
      name: "azure_vnet_agent_ebtables_mismatch",
      help:
        "1 when the node's ebtables uses another backend (nf_tables or legacy) than the agent's: the agent hands every bridge-mode call back to the plugins",
      registers: [registry],
    });
    this.#ebtablesMismatch.set(0);
    const ready = options.ready ?? (() => true);
    new Gauge({
      name: "azure_vnet_agent_ready",
      help:
        "1 while the agent is ready (what azure-vnet-agent probe --ready checks), 0 while its startup reconcile has failed or the node's ebtables is not its own",
      registers: [registry],
      collect() {
        this.set(ready() ? 1 : 0);
      },
    });
  }

  /**
   * Counts one answered CNI request.
   *
   * @param request The command (`-` when unknown), exit code, duration.
   */
  observeRequest(
    request: { command: string; code: number; seconds: number },
  ): void {
    const command = request.command === "" ? "-" : request.command;
    this.#requests.inc({ command, code: String(request.code) });
    this.#duration.observe({ command }, request.seconds);
  }

  /**
   * Counts one ARM request.
   *
   * @param request The operation (`get`, `update`...) and its result.
   */
  observeArm(request: { operation: string; result: string }): void {
    this.#arm.inc({ operation: request.operation, result: request.result });
  }

  /**
   * Records one state file write.
   *
   * @param seconds Its duration.
   */
  observeStateWrite(seconds: number): void {
    this.#writes.observe(seconds);
  }

  /**
   * Sets `azure_vnet_agent_ebtables_mismatch` to 1: the node's `ebtables`
   * is not the agent's (`ebtables_backend.ts`).
   */
  markEbtablesMismatch(): void {
    this.#ebtablesMismatch.set(1);
  }

  /** Sets `azure_vnet_agent_up` to 0 (the agent is stopping). */
  markDown(): void {
    this.#up.set(0);
  }

  /** The content type of {@link AgentMetrics.render}. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * The exposition text.
   *
   * @returns Prometheus text format 0.0.4.
   */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
