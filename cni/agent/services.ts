/**
 * What the agent runs beside its socket (#16): the config file, the
 * Prometheus metrics, the HTTP listener with `/metrics`, `/v1/endpoints`
 * and `/v1/pool`, and the warm pool when the config turns it on. `main.ts`
 * starts it, feeds it each answered request and closes it on SIGTERM.
 *
 * A listener that cannot bind (the port is taken) is logged and the agent
 * serves CNI calls anyway: metrics never cost a pod its network.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { readState } from "@vnet/azure-vnet";
import { observeStateWrites } from "@vnet/cni";
import { IPAM_STATE_FILE, readIpamState } from "@vnet/ipam";
import {
  type AgentConfig,
  DEFAULT_IMDS_URL,
  loadAgentConfig,
} from "./config.ts";
import { endpointsDocument, poolDocument } from "./introspect.ts";
import { AgentMetrics } from "./metrics.ts";
import type { ServedRequest } from "./server.ts";
import { StatusServer } from "./status_server.ts";
import { WarmPool } from "./warm_pool.ts";

const log = getLogger(["azure-vnet-agent"]);

/** Options of {@link startNodeServices}. */
export interface NodeServicesOptions {
  /** The state directory the agent serves. */
  readonly stateDir: string;
  /** The process environment (`AZURE_VNET_AGENT_CONFIG`). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** A config to use instead of the file (tests). */
  readonly config?: AgentConfig;
  /** Clock in epoch ms; default `Date.now`. */
  readonly now?: () => number;
  /** LRO poll interval of the warm pool's NIC updates (tests). */
  readonly armPollIntervalMs?: number;
  /** Writes the buffered log lines (after each warm pool pass). */
  readonly flushLogs?: () => Promise<void>;
  /** Whether the agent is ready, for `azure_vnet_agent_ready`. */
  readonly ready?: () => boolean;
}

/** The running services. */
export interface NodeServices extends AsyncDisposable {
  /** The config in force. */
  readonly config: AgentConfig;
  /** The metrics. */
  readonly metrics: AgentMetrics;
  /** The listener's `host:port`, or undefined when off or not bound. */
  readonly address: string | undefined;
  /** The warm pool controller, or undefined when off (the default). */
  readonly warmPool: WarmPool | undefined;
  /** Counts an answered request (the server's `onServed`). */
  served(request: ServedRequest): void;
  /** Marks the agent down, stops the listener and the observers. */
  close(): Promise<void>;
}

/**
 * Loads the config and starts the metrics and the HTTP listener.
 *
 * @param options The state dir, the environment, test overrides.
 * @returns The services.
 * @throws {AgentConfigError} For an invalid config file.
 *
 * @tags allow-read, allow-net
 */
export async function startNodeServices(
  options: NodeServicesOptions,
): Promise<NodeServices> {
  const config = options.config ?? await loadAgentConfig(options.env);
  const now = options.now ?? Date.now;
  const { stateDir } = options;
  const metrics = new AgentMetrics({
    ipamStatePath: `${stateDir}/${IPAM_STATE_FILE}`,
    ...(options.ready === undefined ? {} : { ready: options.ready }),
  });
  const stopObserving = observeStateWrites((e) =>
    metrics.observeStateWrite(e.seconds)
  );
  // When this agent answered each endpoint's ADD: its age in /v1/endpoints.
  const added = new Map<string, number>();
  let warmPool: WarmPool | undefined;
  if (config.warmPool !== undefined) {
    // @azure/identity takes IMDS (its token endpoint) from this variable.
    if (
      config.cloud.imdsUrl !== DEFAULT_IMDS_URL &&
      (options.env.AZURE_POD_IDENTITY_AUTHORITY_HOST ?? "") === ""
    ) {
      Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", config.cloud.imdsUrl);
    }
    warmPool = new WarmPool({
      settings: config.warmPool,
      cloud: config.cloud,
      stateDir,
      metrics,
      ...(options.armPollIntervalMs === undefined
        ? {}
        : { pollIntervalMs: options.armPollIntervalMs }),
      ...(options.flushLogs === undefined ? {} : { onPass: options.flushLogs }),
    });
    warmPool.start();
    log.info(
      "Warm pool on: {warmMin}..{warmMax} free addresses, at most {maxIpConfigs} ipconfigs",
      { ...config.warmPool },
    );
  }
  let server: StatusServer | undefined;
  if (config.metrics !== undefined) {
    try {
      server = StatusServer.start(config.metrics, {
        metrics: async () => ({
          text: await metrics.render(),
          contentType: metrics.contentType,
        }),
        endpoints: async () =>
          endpointsDocument(await readState(stateDir), { added, now: now() }),
        pool: async () =>
          poolDocument(
            await readIpamState(`${stateDir}/${IPAM_STATE_FILE}`),
          ),
      });
      log.info("Metrics and introspection on http://{address}", {
        address: server.address,
      });
    } catch (err) {
      log.error("Cannot serve metrics on {hostname}:{port}: {err}", {
        ...config.metrics,
        err: err instanceof Error ? err.message : String(err),
      });
    }
  }
  let closed: Promise<void> | undefined;
  function close(): Promise<void> {
    closed ??= (async () => {
      metrics.markDown();
      await warmPool?.close();
      stopObserving();
      await server?.close();
    })();
    return closed;
  }
  return {
    config,
    metrics,
    address: server?.address,
    warmPool,
    served(request) {
      metrics.observeRequest(request);
      if (request.command === "ADD" || request.command === "DEL") {
        warmPool?.kick();
      }
      if (request.plugin !== "azure-vnet" || request.code !== 0) return;
      const key = `${request.containerId}/${request.ifName}`;
      if (request.command === "ADD" && !added.has(key)) added.set(key, now());
      if (request.command === "DEL") added.delete(key);
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
