/**
 * Parsing of `CNI_ARGS` (`K=V;K=V`) into {@link CniArgs}.
 *
 * Follows the reference library (`pkg/types/args.go`):
 *
 * - a pair without `=`, with an empty key or with a second `=` is malformed:
 *   code 4 (the variable is invalid). Empty segments (`a=1;;b=2`, a trailing
 *   `;`) are tolerated, unlike the reference.
 * - an unknown key is an error unless `IgnoreUnknown` is true (`1`, `true`,
 *   `True`, `TRUE`). We use code 2 ("unsupported field", naming the key and
 *   value) where the reference library has no code of its own.
 * - `IP=` may carry several comma-separated addresses, each with an optional
 *   prefix length; `MAC=` must be six hex octets.
 *
 * @module
 */
import { ipFamily } from "@vnet/address";
import { CniError, CODES } from "./errors.ts";
import type { CniArgs } from "./spec.ts";

/** The keys we understand. */
export const KNOWN_CNI_ARGS: readonly string[] = [
  "IgnoreUnknown",
  "K8S_POD_NAME",
  "K8S_POD_NAMESPACE",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
  "IP",
  "MAC",
];

/** Options of {@link parseCniArgs}. */
export interface ParseCniArgsOptions {
  /** Further keys a plugin understands. */
  extraKeys?: readonly string[];
  /** Tolerate unknown keys even without `IgnoreUnknown` (used for DEL). */
  ignoreUnknown?: boolean;
}

const TRUE_VALUES = new Set(["1", "true", "True", "TRUE"]);
const FALSE_VALUES = new Set(["0", "false", "False", "FALSE", ""]);

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/**
 * Tells whether `s` is an IPv4 or IPv6 address with an optional `/prefix`.
 *
 * @param s The text.
 * @returns True when valid.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIpOrCidr } from "./args.ts";
 * assert.ok(isIpOrCidr("10.0.0.5/24"));
 * assert.ok(isIpOrCidr("2001:db8::5"));
 * assert.ok(!isIpOrCidr("10.0.0.256"));
 * ```
 */
export function isIpOrCidr(s: string): boolean {
  const [addr = "", prefix, extra] = s.split("/");
  if (extra !== undefined) return false;
  const family = ipFamily(addr);
  if (family === undefined) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

function invalid(msg: string): CniError {
  return new CniError(CODES.invalidEnvironment, msg);
}

/**
 * Parses `CNI_ARGS`.
 *
 * @param raw The raw variable (may be empty).
 * @param options Extra known keys; whether to ignore unknown keys anyway.
 * @returns The parsed arguments; for a repeated key, the last value wins.
 * @throws {CniError} Code 4 for a malformed pair, an invalid `IgnoreUnknown`,
 * `IP` or `MAC` value; code 2 for an unknown key without `IgnoreUnknown`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCniArgs } from "./args.ts";
 * const a = parseCniArgs("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5,10.0.0.6");
 * assert.equal(a.podName, "web");
 * assert.deepEqual(a.ips, ["10.0.0.5", "10.0.0.6"]);
 * ```
 */
export function parseCniArgs(
  raw: string,
  options: ParseCniArgsOptions = {},
): CniArgs {
  const all = new Map<string, string>();
  for (const pair of raw.split(";")) {
    if (pair === "") continue;
    const kv = pair.split("=");
    if (kv.length !== 2 || kv[0] === "") {
      throw invalid(
        `Invalid CNI_ARGS: pair ${JSON.stringify(pair)} is not KEY=VALUE`,
      );
    }
    all.set(kv[0] ?? "", kv[1] ?? "");
  }
  const ignoreRaw = all.get("IgnoreUnknown") ?? "";
  if (!TRUE_VALUES.has(ignoreRaw) && !FALSE_VALUES.has(ignoreRaw)) {
    throw invalid(
      `Invalid CNI_ARGS: IgnoreUnknown ${
        JSON.stringify(ignoreRaw)
      } is not a boolean`,
    );
  }
  const ignoreUnknown = TRUE_VALUES.has(ignoreRaw);
  if (!ignoreUnknown && options.ignoreUnknown !== true) {
    const known = new Set([...KNOWN_CNI_ARGS, ...(options.extraKeys ?? [])]);
    for (const [k, v] of all) {
      if (!known.has(k)) {
        throw new CniError(
          CODES.unsupportedField,
          `Unsupported CNI_ARGS key ${JSON.stringify(k)} (value ${
            JSON.stringify(v)
          }); set IgnoreUnknown=1 to ignore it`,
        );
      }
    }
  }
  const ips: string[] = [];
  const ipRaw = all.get("IP");
  if (ipRaw !== undefined) {
    for (const part of ipRaw.split(",")) {
      const ip = part.trim();
      if (!isIpOrCidr(ip)) {
        throw invalid(
          `Invalid CNI_ARGS: IP ${JSON.stringify(ip)} is not an address`,
        );
      }
      ips.push(ip);
    }
  }
  const mac = all.get("MAC");
  if (mac !== undefined && !MAC.test(mac)) {
    throw invalid(
      `Invalid CNI_ARGS: MAC ${JSON.stringify(mac)} is not a MAC address`,
    );
  }
  const out: {
    all: ReadonlyMap<string, string>;
    ignoreUnknown: boolean;
    ips: readonly string[];
    podName?: string;
    podNamespace?: string;
    podInfraContainerId?: string;
    mac?: string;
  } = { all, ignoreUnknown, ips };
  const name = all.get("K8S_POD_NAME");
  if (name !== undefined) out.podName = name;
  const ns = all.get("K8S_POD_NAMESPACE");
  if (ns !== undefined) out.podNamespace = ns;
  const infra = all.get("K8S_POD_INFRA_CONTAINER_ID");
  if (infra !== undefined) out.podInfraContainerId = infra;
  if (mac !== undefined) out.mac = mac.toLowerCase();
  return out;
}
