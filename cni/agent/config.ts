/**
 * The agent's config file (#16), validated with zod: the metrics and
 * introspection listener, the warm pool and the cloud endpoints.
 *
 * The file is `/etc/azure-vnet/agent.json`, or `AZURE_VNET_AGENT_CONFIG`.
 * Without a file every default holds: the listener on `127.0.0.1:10091`,
 * no warm pool (the NIC keeps the `ipAddressCount` the NIC tool gave it).
 *
 * ```json
 * {
 *   "metrics": { "address": "127.0.0.1:10091" },
 *   "warmPool": { "warmMin": 2, "warmMax": 6 },
 *   "cloud": { "armEndpoint": "https://management.azure.com",
 *              "imdsUrl": "http://169.254.169.254" }
 * }
 * ```
 *
 * @module
 */
import * as z from "zod";

/** The config file read when `AZURE_VNET_AGENT_CONFIG` is unset. */
export const DEFAULT_AGENT_CONFIG_PATH = "/etc/azure-vnet/agent.json";

/** Where the metrics and introspection listener binds by default. */
export const DEFAULT_METRICS_ADDRESS = "127.0.0.1:10091";

/** IMDS, also the managed identity's token endpoint. */
export const DEFAULT_IMDS_URL = "http://169.254.169.254";

/** Azure Resource Manager of the public cloud. */
export const DEFAULT_ARM_ENDPOINT = "https://management.azure.com";

/** The most IP configurations Azure allows on one NIC. */
export const MAX_IPCONFIGS_PER_NIC = 256;

/** A NIC's ARM resource id. */
const NIC_ID_RE =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/networkInterfaces\/[^/]+$/i;

/**
 * A listen address: `host:port` with an IPv4 literal, or `[v6]:port`. Port
 * 0 lets the kernel pick one (tests).
 */
export interface ListenAddress {
  /** The IP literal (IPv6 without brackets). */
  readonly hostname: string;
  /** 0..65535. */
  readonly port: number;
}

/**
 * Parses a listen address (`127.0.0.1:10091`, `[::1]:10091`).
 *
 * @param text The address.
 * @returns Host and port, or undefined when `text` is no such address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseListenAddress } from "./config.ts";
 * assert.deepEqual(parseListenAddress("127.0.0.1:10091"),
 *   { hostname: "127.0.0.1", port: 10091 });
 * assert.equal(parseListenAddress("localhost:80"), undefined);
 * ```
 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const m = /^(?:(\d{1,3}(?:\.\d{1,3}){3})|\[([0-9a-fA-F:.]+)\]):(\d{1,5})$/
    .exec(text);
  if (m === null) return undefined;
  const port = Number(m[3]);
  const v4 = m[1];
  if (port > 65535) return undefined;
  if (v4 !== undefined && v4.split(".").some((o) => Number(o) > 255)) {
    return undefined;
  }
  const hostname = v4 ?? m[2] ?? "";
  if (v4 === undefined && !hostname.includes(":")) return undefined;
  return { hostname, port };
}

const urlSchema = z.url({ protocol: /^https?$/ });

const warmPoolSchema = z.strictObject({
  /** Free addresses below this: add ipconfigs. */
  warmMin: z.int().min(0).max(MAX_IPCONFIGS_PER_NIC - 1),
  /** Free addresses above this: remove ipconfigs. */
  warmMax: z.int().min(1).max(MAX_IPCONFIGS_PER_NIC - 1),
  /** The NIC's ARM id; default: found through IMDS. */
  nicId: z.optional(z.string().regex(NIC_ID_RE, "must be a NIC's ARM id")),
  /** The most ipconfigs, primary included (Azure's limit is 256). */
  maxIpConfigs: z.int().min(2).max(MAX_IPCONFIGS_PER_NIC).default(
    MAX_IPCONFIGS_PER_NIC,
  ),
  /** How often the controller looks at the pool, in seconds. */
  intervalSeconds: z.number().positive().max(3600).default(10),
  /** The shortest time between two NIC updates, in seconds. */
  minUpdateIntervalSeconds: z.number().min(0).max(3600).default(5),
  /** The longest backoff after 429, 5xx or an outage, in seconds. */
  maxBackoffSeconds: z.number().positive().max(3600).default(300),
  /** How long an ADD waits for a scale-up in flight, in seconds. */
  scaleUpWaitSeconds: z.number().min(0).max(60).default(10),
}).refine((w) => w.warmMin <= w.warmMax, {
  message: "warmMin must not exceed warmMax",
  path: ["warmMin"],
});

const schema = z.strictObject({
  metrics: z.optional(z.strictObject({
    /** `host:port`; an empty string turns the listener off. */
    address: z.string().refine(
      (a) => a === "" || parseListenAddress(a) !== undefined,
      "must be IP:port (an IPv4 literal, or [IPv6]), or empty for off",
    ),
  })),
  warmPool: z.optional(warmPoolSchema),
  cloud: z.optional(z.strictObject({
    armEndpoint: z.optional(urlSchema),
    imdsUrl: z.optional(urlSchema),
    /** A PEM CA bundle trusted for ARM (the emulator's). */
    caFile: z.optional(z.string().min(1)),
  })),
});

/** The validated warm pool settings (times in ms). */
export interface WarmPoolSettings {
  readonly warmMin: number;
  readonly warmMax: number;
  readonly nicId?: string;
  readonly maxIpConfigs: number;
  readonly intervalMs: number;
  readonly minUpdateIntervalMs: number;
  readonly maxBackoffMs: number;
  readonly scaleUpWaitMs: number;
}

/** The validated agent config, defaults applied. */
export interface AgentConfig {
  /** The file read, or undefined when none existed. */
  readonly path?: string;
  /** The listener, or undefined when turned off. */
  readonly metrics?: ListenAddress;
  /** The warm pool, or undefined when off (the default). */
  readonly warmPool?: WarmPoolSettings;
  /** The cloud endpoints. */
  readonly cloud: {
    readonly armEndpoint: string;
    readonly imdsUrl: string;
    readonly caFile?: string;
  };
}

/** Thrown for a config file that is no valid agent config. */
export class AgentConfigError extends Error {
  /**
   * @param path The file.
   * @param problems One line per invalid field.
   */
  constructor(path: string, problems: readonly string[]) {
    super(`Invalid agent config "${path}": ${problems.join("; ")}`);
    this.name = "AgentConfigError";
  }
}

/**
 * Validates a parsed config document and applies the defaults.
 *
 * @param value The parsed JSON (`{}` for no file).
 * @param path The file, for messages.
 * @returns The config.
 * @throws {AgentConfigError} Naming every invalid field.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAgentConfig } from "./config.ts";
 * const c = parseAgentConfig({ warmPool: { warmMin: 2, warmMax: 6 } });
 * assert.equal(c.metrics?.port, 10091);
 * assert.equal(c.warmPool?.maxIpConfigs, 256);
 * assert.throws(() => parseAgentConfig({ warmPool: { warmMin: 7, warmMax: 6 } }),
 *   { name: "AgentConfigError", message: /warmPool\.warmMin/ });
 * ```
 */
export function parseAgentConfig(
  value: unknown,
  path = "(defaults)",
): AgentConfig {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new AgentConfigError(
      path,
      parsed.error.issues.map((i) =>
        `${i.path.length === 0 ? "(top)" : i.path.join(".")}: ${i.message}`
      ),
    );
  }
  const c = parsed.data;
  const address = c.metrics?.address ?? DEFAULT_METRICS_ADDRESS;
  const metrics = address === "" ? undefined : parseListenAddress(address);
  const w = c.warmPool;
  const warmPool: WarmPoolSettings | undefined = w === undefined ? undefined : {
    warmMin: w.warmMin,
    warmMax: w.warmMax,
    ...(w.nicId === undefined ? {} : { nicId: w.nicId }),
    maxIpConfigs: w.maxIpConfigs,
    intervalMs: w.intervalSeconds * 1000,
    minUpdateIntervalMs: w.minUpdateIntervalSeconds * 1000,
    maxBackoffMs: w.maxBackoffSeconds * 1000,
    scaleUpWaitMs: w.scaleUpWaitSeconds * 1000,
  };
  return {
    ...(path === "(defaults)" ? {} : { path }),
    ...(metrics === undefined ? {} : { metrics }),
    ...(warmPool === undefined ? {} : { warmPool }),
    cloud: {
      armEndpoint: c.cloud?.armEndpoint ?? DEFAULT_ARM_ENDPOINT,
      imdsUrl: c.cloud?.imdsUrl ?? DEFAULT_IMDS_URL,
      ...(c.cloud?.caFile === undefined ? {} : { caFile: c.cloud.caFile }),
    },
  };
}

/**
 * Reads the agent config: `AZURE_VNET_AGENT_CONFIG`, else
 * `/etc/azure-vnet/agent.json`. A missing default file means the defaults;
 * a missing file named by the variable is an error.
 *
 * @param env The process environment.
 * @returns The config.
 * @throws {AgentConfigError} For a file that is no JSON or no valid config.
 * @throws {Deno.errors.NotFound} For a named file that does not exist.
 *
 * @tags allow-read
 */
export async function loadAgentConfig(
  env: Readonly<Record<string, string | undefined>>,
): Promise<AgentConfig> {
  const named = env.AZURE_VNET_AGENT_CONFIG;
  const path = named === undefined || named === ""
    ? DEFAULT_AGENT_CONFIG_PATH
    : named;
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && path !== named) {
      return parseAgentConfig({});
    }
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new AgentConfigError(path, [
      `not JSON (${err instanceof Error ? err.message : String(err)})`,
    ]);
  }
  return parseAgentConfig(value, path);
}
