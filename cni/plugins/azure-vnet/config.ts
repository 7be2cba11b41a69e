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
  type Dns,
  type IpamSection,
  LOG_LEVELS,
  type LogLevelName,
} from "@vnet/cni";
import type { NetConf } from "@vnet/cni";

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
  /** Always `"bridge"` (an empty `mode` means bridge). */
  readonly mode: "bridge";
  /** The bridge name, at most 15 bytes. */
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
   * True to exec the IPAM binary even for `azure-vnet-ipam` (top-level
   * `ipamExec`, default false).
   */
  readonly ipamExec: boolean;
}

const IFNAME_RE = /^[^\s/:]+$/;

function ifNameSchema(field: string) {
  return z.string().check(
    z.refine((s) => new TextEncoder().encode(s).length <= 15, {
      message: `${field} must be at most 15 bytes`,
    }),
    z.refine(
      (s) => s === "" || (IFNAME_RE.test(s) && s !== "." && s !== ".."),
      {
        message: `${field} must not contain whitespace, "/" or ":"`,
      },
    ),
  );
}

const dnsSchema = z.object({
  nameservers: z.optional(z.array(z.string())),
  domain: z.optional(z.string()),
  search: z.optional(z.array(z.string())),
  options: z.optional(z.array(z.string())),
});

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
  dns: z.optional(dnsSchema),
  logLevel: z.optional(z.string()),
  ipam: z.looseObject({
    type: z.string().check(
      z.minLength(1, { message: "ipam.type must not be empty" }),
    ),
  }),
  ipamExec: z.optional(z.boolean()),
});

function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues.map((i) => {
    const at = i.path.length === 0 ? "" : ` at "${i.path.join(".")}"`;
    return `${i.message}${at}`;
  }).join("; ");
}

function copyDns(dns: z.infer<typeof dnsSchema>): Dns {
  const out: Dns = {};
  if (dns.nameservers !== undefined) out.nameservers = [...dns.nameservers];
  if (dns.domain !== undefined) out.domain = dns.domain;
  if (dns.search !== undefined) out.search = [...dns.search];
  if (dns.options !== undefined) out.options = [...dns.options];
  return out;
}

/**
 * Validates the network configuration `azure-vnet` received.
 *
 * `mode` may be absent, empty or `"bridge"`; any other mode fails. `bridge`
 * defaults to `azure0`. Interface names are checked to be at most 15 bytes.
 * `logLevel` is `debug`, `info`, `warning` or `error` (case-insensitive, `warn` is
 * accepted for `warning`).
 *
 * @param conf The parsed stdin (`CmdArgs.config`).
 * @returns The validated configuration.
 * @throws {CniError} Code 7 for any invalid field; the message names it.
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
 * ```
 */
export function parseConfig(conf: NetConf): AzureVnetConfig {
  const parsed = configSchema.safeParse(conf);
  if (!parsed.success) {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid network config: ${formatIssues(parsed.error.issues)}`,
    );
  }
  const c = parsed.data;
  const mode = c.mode ?? "";
  if (mode !== "" && mode !== "bridge") {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid network config: mode "${mode}" is not supported; use "bridge"`,
    );
  }
  let level = (c.logLevel ?? "info").toLowerCase();
  if (level === "warn") level = "warning";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid network config: logLevel "${c.logLevel}" is not one of ${
        LOG_LEVELS.join(", ")
      }`,
    );
  }
  if (typeof conf.name !== "string" || conf.name === "") {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid network config: field "name" is missing`,
    );
  }
  const bridge = c.bridge === undefined || c.bridge === ""
    ? DEFAULT_BRIDGE
    : c.bridge;
  return {
    name: conf.name,
    cniVersion: conf.cniVersion,
    mode: "bridge",
    bridge,
    master: c.master === undefined || c.master === "" ? undefined : c.master,
    mtu: c.mtu,
    dns: c.dns === undefined ? undefined : copyDns(c.dns),
    logLevel: level as LogLevel,
    ipam: c.ipam as IpamSection,
    ipamExec: c.ipamExec ?? false,
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
