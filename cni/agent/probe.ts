/**
 * `azure-vnet-agent probe` (#14): the DaemonSet's liveness check, and with
 * `--ready` its readiness check. It asks the agent on its socket for a CNI
 * `VERSION` of `azure-vnet`, so it passes only when an agent accepts, runs
 * a request and answers: a missing or stale socket, or an agent that
 * accepts but never answers (frozen, stuck), fails it. `VERSION` takes no
 * state lock, so a long ADD waiting on the lock does not fail the probe.
 *
 * The readiness check marks its request ({@link READINESS_VAR}); the agent
 * then answers code 11 while it is not ready (`readiness.ts`: its startup
 * reconcile failed, or the node's `ebtables` is not its own). An older
 * agent ignores the mark and answers as to liveness.
 *
 * @module
 */
import {
  type AgentRequest,
  decodeReply,
  encodeFrame,
  MAX_REPLY_BYTES,
  readFrame,
} from "@vnet/forward";

/** The probe's default wait for the answer, below a 5 s probe timeout. */
export const PROBE_TIMEOUT_MS = 4000;

/** What {@link probeAgent} found. */
export interface ProbeResult {
  /** True when the agent answered the VERSION request with code 0. */
  ok: boolean;
  /** One line for the probe's output. */
  message: string;
}

/**
 * The variable in a probe's `VERSION` request that asks for readiness; its
 * value is `1`. No runtime sets it, so a plugin's own `VERSION` is never
 * taken for a probe.
 */
export const READINESS_VAR = "AZURE_VNET_AGENT_PROBE_READY";

function request(ready: boolean): AgentRequest {
  return {
    plugin: "azure-vnet",
    env: { CNI_COMMAND: "VERSION", ...(ready ? { [READINESS_VAR]: "1" } : {}) },
    stdin: new TextEncoder().encode('{"cniVersion":"1.0.0"}').toBase64(),
  };
}

/**
 * Sends one `VERSION` request to the agent on `socketPath` and checks the
 * answer: code 0 and a document with `supportedVersions`.
 *
 * @param socketPath The agent's socket (`<state dir>/azure-vnet-agent.sock`).
 * @param options `timeoutMs` for the request and its answer (default
 *   {@link PROBE_TIMEOUT_MS}); `ready` to ask for readiness too: an agent
 *   that answers but is not ready fails it.
 * @returns Whether it answered (and is ready), and a line saying what
 *   happened.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { probeAgent } from "./probe.ts";
 * const r = await probeAgent("/nonexistent/azure-vnet-agent.sock");
 * assert.equal(r.ok, false);
 * assert.match(r.message, /no socket/);
 * ```
 */
export async function probeAgent(
  socketPath: string,
  options: { timeoutMs?: number; ready?: boolean } = {},
): Promise<ProbeResult> {
  const timeoutMs = options.timeoutMs ?? PROBE_TIMEOUT_MS;
  const ready = options.ready ?? false;
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ transport: "unix", path: socketPath });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { ok: false, message: `no socket at ${socketPath}` };
    }
    if (err instanceof Deno.errors.ConnectionRefused) {
      return { ok: false, message: `nothing listens on ${socketPath}` };
    }
    return { ok: false, message: `cannot connect to ${socketPath}: ${err}` };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    const frame = encodeFrame(request(ready));
    let off = 0;
    while (off < frame.length) off += await conn.write(frame.subarray(off));
    const body = await readFrame(conn, MAX_REPLY_BYTES);
    if (body === undefined) {
      return { ok: false, message: `the agent closed without an answer` };
    }
    const reply = decodeReply(body);
    const doc: unknown = JSON.parse(reply.stdout);
    const versions = typeof doc === "object" && doc !== null &&
        "supportedVersions" in doc && Array.isArray(doc.supportedVersions)
      ? doc.supportedVersions
      : undefined;
    if (
      ready && reply.code !== 0 && typeof doc === "object" && doc !== null &&
      "code" in doc && doc.code === 11
    ) {
      const details = "details" in doc ? String(doc.details) : "";
      return {
        ok: false,
        message:
          `the agent on ${socketPath} answers but is not ready: ${details}`,
      };
    }
    if (reply.code !== 0 || versions === undefined) {
      return {
        ok: false,
        message:
          `the agent answered VERSION with code ${reply.code}: ${reply.stdout.trim()}`,
      };
    }
    return {
      ok: true,
      message: `the agent on ${socketPath} answers${
        ready ? " and is ready" : ""
      } (CNI ${versions.join(", ")})`,
    };
  } catch (err) {
    if (timedOut) {
      return {
        ok: false,
        message: `no answer from ${socketPath} in ${timeoutMs} ms`,
      };
    }
    return { ok: false, message: `probe of ${socketPath} failed: ${err}` };
  } finally {
    clearTimeout(timer);
    if (!timedOut) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}
