/**
 * `state show` through the running agent (#16): when the agent of the state
 * dir runs (its socket is there), the tool reads `GET /v1/endpoints` and
 * `GET /v1/pool` from the agent's listener instead of the files, and falls
 * back to the files when the agent does not answer.
 *
 * @module
 */

/** The agent's listener by default (`metrics.address` of its config). */
export const DEFAULT_AGENT_URL = "http://127.0.0.1:10091";

/** What the agent answered. */
export interface AgentView {
  /** The listener read. */
  readonly url: string;
  /** `GET /v1/endpoints`. */
  readonly endpoints: readonly Record<string, unknown>[];
  /** `GET /v1/pool`. */
  readonly pool: {
    readonly lastRefresh: number | null;
    readonly pools: readonly {
      readonly subnet: string;
      readonly counts: Record<string, number>;
      readonly addresses: readonly Record<string, unknown>[];
    }[];
  };
}

/** Options of {@link readAgentView}. */
export interface AgentViewOptions {
  /** The listener's base URL; default {@link DEFAULT_AGENT_URL}. */
  readonly url?: string;
  /** Per-request timeout in ms; default 2000. */
  readonly timeoutMs?: number;
  /** `fetch` (tests). */
  readonly fetch?: typeof fetch;
}

/**
 * Reads the agent's introspection documents, if the state dir's agent runs.
 *
 * @param stateDir The state dir (`azure-vnet-agent.sock` there means an
 *   agent serves it).
 * @param options The listener, a timeout, `fetch`.
 * @returns The documents, or undefined when no agent runs or it does not
 *   answer (the caller reads the files).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readAgentView } from "./agent_view.ts";
 * assert.equal(await readAgentView("/nonexistent"), undefined);
 * ```
 */
export async function readAgentView(
  stateDir: string,
  options: AgentViewOptions = {},
): Promise<AgentView | undefined> {
  try {
    const st = await Deno.lstat(`${stateDir}/azure-vnet-agent.sock`);
    if (!st.isSocket) return undefined;
  } catch {
    return undefined;
  }
  const url = (options.url ?? DEFAULT_AGENT_URL).replace(/\/+$/, "");
  const get = async (path: string): Promise<unknown> => {
    const res = await (options.fetch ?? fetch)(`${url}${path}`, {
      signal: AbortSignal.timeout(options.timeoutMs ?? 2000),
    });
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`GET ${path}: HTTP ${res.status}`);
    }
    return await res.json();
  };
  try {
    const [endpoints, pool] = await Promise.all([
      get("/v1/endpoints"),
      get("/v1/pool"),
    ]);
    if (!Array.isArray(endpoints) || typeof pool !== "object" || !pool) {
      return undefined;
    }
    return { url, endpoints, pool: pool as AgentView["pool"] };
  } catch {
    return undefined;
  }
}

function cell(v: unknown): string {
  if (v === null || v === undefined) return "-";
  return Array.isArray(v) ? v.join(",") : String(v);
}

/**
 * Renders the agent's view as `state show` prints it.
 *
 * @param view The documents.
 * @returns The text (ends with a newline).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAgentView } from "./agent_view.ts";
 * const text = formatAgentView({ url: "http://127.0.0.1:10091", endpoints: [],
 *   pool: { lastRefresh: null, pools: [] } });
 * assert.match(text, /^SOURCE\tagent http:\/\/127\.0\.0\.1:10091/);
 * ```
 */
export function formatAgentView(view: AgentView): string {
  const lines = [`SOURCE\tagent ${view.url}`, ""];
  lines.push("ENDPOINT\tNETWORK\tIFNAME\tADDRESS\tMAC\tHOST VETH\tAGE S");
  for (const e of view.endpoints) {
    lines.push(
      [
        e.containerId,
        e.network,
        e.ifName,
        e.address,
        e.mac,
        e.hostVeth,
        e.ageSeconds,
      ].map(cell).join("\t"),
    );
  }
  for (const p of view.pool.pools) {
    lines.push(
      "",
      `POOL ${p.subnet}\tin_use ${p.counts.in_use ?? 0}\tfree ${
        p.counts.free ?? 0
      }\tstale ${p.counts.stale ?? 0}`,
    );
    lines.push("ADDRESS\tSTATE\tCONTAINER\tIFNAME\tPOD");
    for (const a of p.addresses) {
      lines.push(
        [a.address, a.state, a.containerId, a.ifName, a.pod ?? a.lastPod]
          .map(cell).join("\t"),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}
