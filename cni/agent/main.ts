/**
 * `azure-vnet-agent` (#14): serves the thin plugins' forwarded CNI calls on
 * `<state dir>/azure-vnet-agent.sock` (state dir `AZURE_VNET_STATE_DIR`,
 * else `/var/run`), mode 0600. Logs to `azure-vnet-agent.log` in the log
 * dir (`AZURE_VNET_LOG_DIR`, else `/var/log`); the plugins' own records go
 * to `azure-vnet.log` and `azure-vnet-ipam.log` as without the agent.
 *
 * `azure-vnet-agent serve` first reconciles the state with the kernel (GC
 * of leftovers: `reconcileState` of `@vnet/azure-vnet`; a failure is
 * retried while it serves, `reconcile_retry.ts`), then serves until
 * SIGTERM or SIGINT: then it stops accepting, hands back the requests
 * that have not started, answers those running and exits 0.
 * `azure-vnet-agent probe` asks a running agent for a CNI VERSION on that
 * socket and exits 0 when it answers, 1 when not (the DaemonSet's
 * liveness check, `probe.ts`); `probe --ready` also fails
 * while the agent is not ready (`readiness.ts`: the readiness check).
 * Without `serve` or `probe` it prints its usage (so a build's warm-up run
 * never starts a server).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { createAzureVnetHandlers, reconcileState } from "@vnet/azure-vnet";
import { createIpamHandlers } from "@vnet/azure-vnet-ipam";
import { type PluginHandlers, startPluginLogging } from "@vnet/cni";
import { agentSocketPath } from "@vnet/forward";
import { readLink } from "@vnet/netlink";
import denoJson from "./deno.json" with { type: "json" };
import { agentPlacement } from "./container.ts";
import {
  agentEbtables,
  compareEbtables,
  DEFAULT_HOST_ROOT,
  HOST_ROOT_VAR,
  hostEbtables,
} from "./ebtables_backend.ts";
import { probeAgent } from "./probe.ts";
import { Readiness } from "./readiness.ts";
import { ReconcileRetry } from "./reconcile_retry.ts";
import { handBackFor } from "./hand_back.ts";
import { AgentServer, type RequestContext } from "./server.ts";
import { type NodeServices, startNodeServices } from "./services.ts";
import { withScaleUpWait } from "./warm_pool.ts";

const NAME = "azure-vnet-agent";

function write(file: { writeSync(p: Uint8Array): number }, text: string) {
  const data = new TextEncoder().encode(text);
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

const USAGE = [
  `${NAME} ${denoJson.version}: the azure-vnet node agent`,
  "",
  `Usage: ${NAME} serve        listen on $AZURE_VNET_STATE_DIR/${NAME}.sock`,
  `       ${NAME} probe        exit 0 when the agent there answers, else 1`,
  `       ${NAME} probe --ready  exit 0 when it answers and is ready, else 1`,
  `       ${NAME} --version | --help`,
  "",
].join("\n");

const args = Deno.args;
if (args.includes("--version")) {
  write(Deno.stdout, `${NAME} ${denoJson.version}\n`);
  Deno.exit(0);
}
if (args.includes("--help") || args.includes("-h")) {
  write(Deno.stderr, USAGE);
  Deno.exit(0);
}
const readyProbe = args.length === 2 && args[0] === "probe" &&
  args[1] === "--ready";
if (
  !readyProbe &&
  (args.length !== 1 || (args[0] !== "serve" && args[0] !== "probe"))
) {
  write(Deno.stderr, USAGE);
  Deno.exit(2);
}

const env = Deno.env.toObject();
const socketPath = agentSocketPath(env);
if (args[0] === "probe") {
  const r = await probeAgent(socketPath, { ready: readyProbe });
  write(r.ok ? Deno.stdout : Deno.stderr, `${NAME}: ${r.message}\n`);
  Deno.exit(r.ok ? 0 : 1);
}
const stateDir = socketPath.slice(0, socketPath.lastIndexOf("/"));
const logs = await startPluginLogging(`${NAME}.log`, {
  env,
  args: [],
  categoryFiles: {
    "azure-vnet": "azure-vnet.log",
    "azure-vnet-ipam": "azure-vnet-ipam.log",
  },
});
// One flush at a time, each writing the lines buffered so far. A call
// while one is queued and not started yet shares it (that one writes its
// lines too): a burst's replies cost a few flushes, not one each.
let lastFlush: Promise<void> = Promise.resolve();
let queuedFlush: Promise<void> | undefined;
function flush(): Promise<void> {
  if (queuedFlush !== undefined) return queuedFlush;
  const next = lastFlush.then(() => {
    queuedFlush = undefined;
    return logs.flush();
  });
  queuedFlush = next;
  lastFlush = next;
  return next;
}

const log = getLogger(["azure-vnet-agent"]);

// A promise that a library (the Azure SDK of the warm pool) rejects without
// anyone awaiting it must not kill the agent, and with it every request in
// flight: log it and go on. The plugins fall back while an agent restarts,
// but a crash loop would make every ADD pay the fallback.
globalThis.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  log.error("Unhandled rejection (the agent goes on): {reason}", {
    reason: e.reason instanceof Error
      ? `${e.reason.name}: ${e.reason.message}`
      : String(e.reason),
  });
  void flush();
});

/**
 * GC of leftovers before listening: records whose veth is gone, kernel
 * objects of interrupted ADDs (a killed agent's or plugin's) and
 * reservations of no record. The reconcile logs each removal to
 * azure-vnet.log; a failure is logged and thrown: the agent serves anyway,
 * not ready, and tries again (`reconcile_retry.ts`).
 */
async function reconcile(): Promise<void> {
  const t0 = performance.now();
  try {
    const report = await reconcileState(stateDir);
    const ms = Math.round(performance.now() - t0);
    if (report.actions.length === 0) {
      log.info("Reconciled {stateDir} in {ms} ms: nothing to remove", {
        stateDir,
        ms,
      });
    } else {
      log.info("Reconciled {stateDir} in {ms} ms: {changes}", {
        stateDir,
        ms,
        changes: report.actions.map((a) =>
          `${a.kind} ${a.target}: ${a.outcome}`
        ),
      });
    }
    if (report.failed) {
      log.warning("Reconcile of {stateDir} left work undone", { stateDir });
    }
  } catch (err) {
    log.error("Cannot reconcile {stateDir}: {err}", {
      stateDir,
      err: err instanceof Error ? err.message : String(err),
    });
    throw err;
  } finally {
    await flush();
  }
}

// What makes the agent not ready: a failed startup reconcile (retried while
// it serves), the node's ebtables not being its own.
const readiness = new Readiness();
const reconciles = new ReconcileRetry({
  reconcile,
  readiness,
  onFailure: ({ tries, nextMs }) => {
    log.warning(
      "Not ready: the startup reconcile failed (try {tries}); the next in {seconds} s",
      { tries, seconds: nextMs / 1000 },
    );
    void flush();
  },
  onRecovered: (tries) => {
    log.info("Ready: the startup reconcile succeeded at try {tries}", {
      tries,
    });
    void flush();
  },
});

let server: AgentServer;
let services: NodeServices;
try {
  // In a container, no delegate IPAM runs here: its state would stay in
  // the container's file system.
  const placement = agentPlacement(env, { readLink });
  log.info(
    placement.inContainer
      ? "Runs in a container ({why}): calls with a delegate IPAM plugin go back to the plugins"
      : "Runs on the host ({why})",
    { why: placement.why },
  );
  // The config file, metrics and introspection listener (#16).
  services = await startNodeServices({
    stateDir,
    env,
    flushLogs: flush,
    ready: () => readiness.ready,
  });
  // The node's ebtables against the agent's: two backends would split the
  // pods' rules between two rule sets.
  const ebtables = compareEbtables(
    hostEbtables(env[HOST_ROOT_VAR] || DEFAULT_HOST_ROOT, { readLink }),
    await agentEbtables(),
  );
  if (ebtables.mismatch !== undefined) {
    const line =
      `The node's ebtables is not the agent's: ${ebtables.mismatch}. Every bridge-mode call goes back to the plugins, which run the node's, and the startup reconcile is skipped; run the agent with the node's ebtables backend`;
    log.error("{line}", { line });
    write(Deno.stderr, `${NAME}: ${line}\n`);
    services.metrics.markEbtablesMismatch();
    readiness.fail("ebtables", ebtables.mismatch);
  } else if (ebtables.unknown !== undefined) {
    log.warning(
      "Cannot tell whether the node's ebtables is the agent's ({why}): serving bridge-mode calls",
      { why: ebtables.unknown },
    );
  } else {
    log.info("ebtables: the node's and the agent's are both {backend}", {
      backend: ebtables.same,
    });
  }
  // With a warm pool, an ADD short of addresses waits for its growth (#16).
  const pool = services.warmPool;
  // The handlers are made once; a request gets a cheap wrapper whose wait
  // frees its slot.
  const wait = (h: PluginHandlers) =>
    pool === undefined ? h : (request: RequestContext) =>
      withScaleUpWait(h, {
        pool,
        waitMs: services.config.warmPool?.scaleUpWaitMs ?? 0,
        idle: request.idle,
      });
  server = await AgentServer.listen({
    socketPath,
    stateDir,
    plugins: {
      "azure-vnet": {
        handlers: wait(createAzureVnetHandlers({ stateDir })),
        info: { name: "azure-vnet", version: denoJson.version },
      },
      "azure-vnet-ipam": {
        handlers: wait(createIpamHandlers({ stateDir })),
        info: { name: "azure-vnet-ipam", version: denoJson.version },
      },
    },
    onServed: (served) => {
      services.served(served);
      return flush();
    },
    // The reconcile would run the agent's ebtables on the pods' rules.
    ...(ebtables.mismatch === undefined
      ? { beforeListen: () => reconciles.start() }
      : {}),
    readiness: () => readiness.reason,
    handBack: handBackFor({
      inContainer: placement.inContainer,
      ...(ebtables.mismatch === undefined
        ? {}
        : { bridgeRefused: ebtables.mismatch }),
    }),
  });
} catch (err) {
  write(Deno.stderr, `${NAME}: ${err instanceof Error ? err.message : err}\n`);
  await logs[Symbol.asyncDispose]();
  Deno.exit(1);
}
await flush();
write(Deno.stderr, `${NAME}: listening on ${socketPath}\n`);

async function stop(): Promise<void> {
  // The requests running finish; those not started go back to their
  // plugins (server.ts); a reconcile retry under way ends as it will.
  await Promise.all([reconciles.close(), server.close()]);
  await services.close();
  await flush();
  await logs[Symbol.asyncDispose]();
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
