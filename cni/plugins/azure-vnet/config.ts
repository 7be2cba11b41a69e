/**
 * The `azure-vnet` network configuration: parsed and validated once, with
 * `zod/mini` (the only zod flavour the plugins load).
 *
 * @module
 */
import * as z from "zod/mini";
import {
  CniError,
  CODES,
  copyDns,
  type Dns,
  DnsSchema,
  type IpamSection,
  LOG_LEVELS,
  type LogLevelName,
} from "@vnet/cni";
import type { NetConf } from "@vnet/cni";
import { type IpamConfig, parseIpamConfig } from "@vnet/ipam";
import type { NetworkMode } from "./state.ts";

/** One of the levels `logLevel` accepts (`debug`, `info`, `warning`, `error`). */
export type LogLevel = LogLevelName;

/** The IPAM type run in process (unless `ipamExec` is true). */
export const AZURE_IPAM_TYPE = "azure-vnet-ipam";

/** The default bridge name. */
export const DEFAULT_BRIDGE = "azure0";

/** The validated plugin configuration. */
export interface AzureVnetConfig {
  /** The network name (the network's key in state). */
  readonly name: string;
  /** The requested `cniVersion`. */
  readonly cniVersion: string;
  /** `"bridge"` (the default; an empty `mode` means bridge) or `"transparent"`. */
  readonly mode: NetworkMode;
  /** The bridge name, at most 15 bytes (bridge mode only). */
  readonly bridge: string;
  /** The master interface, or undefined to detect it from the IPAM subnet. */
  readonly master: string | undefined;
  /** The pod MTU, or undefined to use the master's MTU. */
  readonly mtu: number | undefined;
  /** DNS for the result; undefined to use the IPAM result's DNS. */
  readonly dns: Dns | undefined;
  /** The log level (default `info`). */
  readonly logLevel: LogLevel;
  /** The `ipam` section as received. */
  readonly ipam: IpamSection;
  /**
   * The `ipam` section validated by `@vnet/ipam` when `ipam.type` is
   * `azure-vnet-ipam` (either route); undefined for any other IPAM, which
   * validates its own section.
   */
  readonly ipamConfig: IpamConfig | undefined;
  /**
   * True to exec the IPAM binary even for `azure-vnet-ipam` (top-level
   * `ipamExec`, default false).
   */
  readonly ipamExec: boolean;
  /**
   * Bridge mode: drop what a pod sends with a MAC or address not its own
   * (ARP and IPv4), per host veth (top-level `spoofCheck`, default false:
   * the rules cost every frame through the bridge, linearly in pods).
   */
  readonly spoofCheck: boolean;
}

/** No whitespace, `/`, `:`, `%` (a kernel name template) or control characters. */
// deno-lint-ignore no-control-regex
const IFNAME_RE = /^[^\s/:%\x00-\x1f\x7f]+$/;

function ifNameSchema(field: string) {
  return z.string().check(
    z.refine((s) => new TextEncoder().encode(s).length <= 15, {
      message: `${field} must be at most 15 bytes`,
    }),
    z.refine(
      (s) => s === "" || (IFNAME_RE.test(s) && s !== "." && s !== ".."),
      {
        message:
          `${field} must not contain whitespace, control characters, "/", ":" or "%", nor be "." or ".."`,
      },
    ),
  );
}

const configSchema = z.looseObject({
  mode: z.optional(z.string()),
  bridge: z.optional(ifNameSchema("bridge")),
  master: z.optional(ifNameSchema("master")),
  mtu: z.optional(
    z.int().check(
      z.minimum(68, { message: "mtu must be at least 68" }),
      z.maximum(65535, { message: "mtu must be at most 65535" }),
    ),
  ),
  dns: z.optional(DnsSchema),
  logLevel: z.optional(z.string()),
  ipam: z.looseObject({
    type: z.string().check(
      z.minLength(1, { message: "ipam.type must not be empty" }),
    ),
  }),
  ipamExec: z.optional(z.boolean()),
  spoofCheck: z.optional(z.boolean()),
});

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => {
    const at = i.path.length === 0 ? "" : ` at "${i.path.join(".")}"`;
    return `${i.message}${at}`;
  }).join("; ");
}

/** The prefix of `parseIpamConfig()`'s messages, dropped when merged. */
const IPAM_PREFIX = /^Invalid ipam config: /;

/** What `@vnet/ipam` finds wrong in the `ipam` section (code 7 only). */
function ipamProblems(conf: NetConf): {
  config?: IpamConfig;
  problem?: string;
} {
  try {
    return { config: parseIpamConfig(conf) };
  } catch (err) {
    if (err instanceof CniError && err.code === CODES.invalidConfig) {
      return { problem: err.message.replace(IPAM_PREFIX, "") };
    }
    throw err;
  }
}

/**
 * Validates the network configuration `azure-vnet` received.
 *
 * `mode` may be absent, empty or `"bridge"` (bridge mode), or
 * `"transparent"`; any other mode fails. `bridge` defaults to `azure0` (and
 * is unused in transparent mode). Interface names are checked to be at most 15 bytes.
 * `logLevel` is `debug`, `info`, `warning` or `error` (case-insensitive, `warn` is
 * accepted for `warning`). `ipamExec` and `spoofCheck` are booleans.
 *
 * When `ipam.type` is `azure-vnet-ipam` (our own IPAM, in process or not),
 * the `ipam` section is validated here too, with `parseIpamConfig()` from
 * `@vnet/ipam`, so an invalid section fails every command before any state
 * is read (a repeated ADD must not answer from its record).
 *
 * @param conf The parsed stdin (`CmdArgs.config`).
 * @returns The validated configuration.
 * @throws {CniError} Code 7 naming every invalid field, the `ipam` section's
 * included.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 * const cfg = parseConfig({
 *   cniVersion: "1.0.0",
 *   name: "azure",
 *   type: "azure-vnet",
 *   ipam: { type: "azure-vnet-ipam" },
 * });
 * assert.equal(cfg.bridge, "azure0");
 * assert.equal(cfg.mode, "bridge");
 * assert.equal(cfg.ipamConfig?.environment, "azure");
 * assert.throws(
 *   () => parseConfig({
 *     cniVersion: "1.0.0", name: "azure", type: "azure-vnet", mtu: 10,
 *     ipam: { type: "azure-vnet-ipam", queryUrl: "file:///etc/passwd" },
 *   }),
 *   { name: "CniError", code: 7, message: /mtu.*; .*"ipam\.queryUrl"/ },
 * );
 * ```
 */
export function parseConfig(conf: NetConf): AzureVnetConfig {
  const problems: string[] = [];
  const parsed = configSchema.safeParse(conf);
  if (!parsed.success) problems.push(formatIssues(parsed.error.issues));
  // The checks below read the raw fields: a field of the wrong type was
  // reported above, and every other field is still checked.
  const rawMode = conf.mode;
  const mode = typeof rawMode === "string" ? rawMode : "";
  if (mode !== "" && mode !== "bridge" && mode !== "transparent") {
    problems.push(
      `mode "${mode}" is not supported; use "bridge" or "transparent"`,
    );
  }
  const rawLevel = conf.logLevel;
  let level = (typeof rawLevel === "string" ? rawLevel : "info")
    .toLowerCase();
  if (level === "warn") level = "warning";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    problems.push(
      `logLevel "${rawLevel}" is not one of ${LOG_LEVELS.join(", ")}`,
    );
  }
  if (typeof conf.name !== "string" || conf.name === "") {
    problems.push(`field "name" is missing`);
  }
  const ipam = conf.ipam?.type === AZURE_IPAM_TYPE
    ? ipamProblems(conf)
    : undefined;
  if (ipam?.problem !== undefined) problems.push(ipam.problem);
  if (problems.length > 0 || !parsed.success) {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid network config: ${problems.join("; ")}`,
    );
  }
  const c = parsed.data;
  const bridge = c.bridge === undefined || c.bridge === ""
    ? DEFAULT_BRIDGE
    : c.bridge;
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    mode: mode === "transparent" ? "transparent" : "bridge",
    bridge,
    master: c.master === undefined || c.master === "" ? undefined : c.master,
    mtu: c.mtu,
    dns: c.dns === undefined ? undefined : copyDns(c.dns),
    logLevel: level as LogLevel,
    ipam: c.ipam as IpamSection,
    ipamConfig: ipam?.config,
    ipamExec: c.ipamExec ?? false,
    spoofCheck: c.spoofCheck ?? false,
  };
}

/**
 * Reads only `logLevel` from a raw config, never throwing (for entry points
 * that set up logging before full validation).
 *
 * @param conf Any parsed stdin.
 * @returns The level, or `info` when absent or invalid.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { logLevelOf } from "./config.ts";
 * assert.equal(logLevelOf({ logLevel: "DEBUG" }), "debug");
 * assert.equal(logLevelOf({}), "info");
 * ```
 */
export function logLevelOf(conf: unknown): LogLevel {
  if (typeof conf !== "object" || conf === null) return "info";
  const raw = (conf as Record<string, unknown>).logLevel;
  if (typeof raw !== "string") return "info";
  const level = raw.toLowerCase() === "warn" ? "warning" : raw.toLowerCase();
  return (LOG_LEVELS as readonly string[]).includes(level)
    ? level as LogLevel
    : "info";
}
