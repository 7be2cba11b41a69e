/**
 * CNI version negotiation and result conversion between every spec version
 * (0.1.0 … 1.1.0), exactly as the reference library converts.
 *
 * The internal result is {@link Result} (the 1.1.0 shape). {@link parseResult}
 * reads any version's wire form into it; {@link convertResult} writes it out
 * in any version's wire form.
 *
 * @module
 */
import { copyDns } from "./dns.ts";
import { CniError, CODES } from "./errors.ts";
import {
  type CniCommand,
  type CniVersion,
  DEFAULT_VERSION,
  type Dns,
  type Interface,
  type IpConfig,
  type LegacyIpConfig,
  type Result,
  type Route,
  SUPPORTED_VERSIONS,
} from "./spec.ts";

/**
 * Tells whether `v` is one of {@link SUPPORTED_VERSIONS}.
 *
 * @param v Any value.
 * @returns True for a supported version string.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSupportedVersion } from "./version.ts";
 * assert.ok(isSupportedVersion("0.4.0"));
 * assert.ok(!isSupportedVersion("9.9.9"));
 * ```
 */
export function isSupportedVersion(v: unknown): v is CniVersion {
  return typeof v === "string" &&
    (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

function parts(v: string): number[] {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  if (m === null) {
    throw new CniError(
      CODES.incompatibleVersion,
      `Cannot parse CNI version "${v}"`,
    );
  }
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/**
 * Compares two `x.y.z` version strings.
 *
 * @param a A version.
 * @param b Another version.
 * @returns Negative, zero or positive as `a` is lower, equal or higher.
 * @throws {CniError} Code 1 when a version is not `x.y.z`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareVersions } from "./version.ts";
 * assert.ok(compareVersions("0.4.0", "1.0.0") < 0);
 * assert.equal(compareVersions("1.1.0", "1.1.0"), 0);
 * ```
 */
export function compareVersions(a: string, b: string): number {
  const pa = parts(a);
  const pb = parts(b);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Picks the version to speak for a config: its `cniVersion`, or
 * {@link DEFAULT_VERSION} (0.2.0, as the original) when absent.
 *
 * @param configVersion The config's `cniVersion` (may be undefined).
 * @returns The supported version.
 * @throws {CniError} Code 1 when the version is not supported; `details`
 * lists the supported versions.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { negotiateVersion } from "./version.ts";
 * assert.equal(negotiateVersion(undefined), "0.2.0");
 * assert.equal(negotiateVersion("1.0.0"), "1.0.0");
 * assert.throws(() => negotiateVersion("9.9.9"), { name: "CniError", code: 1 });
 * ```
 */
export function negotiateVersion(configVersion: unknown): CniVersion {
  if (configVersion === undefined || configVersion === "") {
    return DEFAULT_VERSION;
  }
  if (isSupportedVersion(configVersion)) return configVersion;
  throw new CniError(
    CODES.incompatibleVersion,
    `Incompatible CNI version ${JSON.stringify(configVersion)}`,
    {
      details: `config is ${JSON.stringify(configVersion)}, plugin supports ${
        SUPPORTED_VERSIONS.join(", ")
      }`,
    },
  );
}

/** The lowest config version that allows each command. */
export const COMMAND_MIN_VERSION: Readonly<Record<CniCommand, CniVersion>> = {
  ADD: "0.1.0",
  DEL: "0.1.0",
  VERSION: "0.1.0",
  CHECK: "0.4.0",
  GC: "1.1.0",
  STATUS: "1.1.0",
};

/**
 * Checks that the config's version allows the command: CHECK needs 0.4.0 or
 * later, GC and STATUS need 1.1.0 or later.
 *
 * Spec nuance: the reference library answers CHECK below 0.4.0 with code 1
 * ("config version does not allow CHECK"), while an old skel answers GC and
 * STATUS with code 3 or 4. We follow the issue and use code 4 (an
 * unsupported `CNI_COMMAND`) for all three, because the version itself is
 * fine for ADD and DEL.
 *
 * @param command The command.
 * @param version The config's (negotiated) version.
 * @throws {CniError} Code 4 when the version is too old for the command.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkCommandVersion } from "./version.ts";
 * checkCommandVersion("CHECK", "0.4.0");
 * assert.throws(() => checkCommandVersion("GC", "1.0.0"), { name: "CniError", code: 4 });
 * ```
 */
export function checkCommandVersion(
  command: CniCommand,
  version: string,
): void {
  const min = COMMAND_MIN_VERSION[command];
  if (compareVersions(version, min) < 0) {
    throw new CniError(
      CODES.invalidEnvironment,
      `Cannot run CNI_COMMAND ${command} for cniVersion "${version}": it needs ${min} or later`,
    );
  }
}

/** Tells whether a CIDR or address is IPv6. */
function isV6(addr: string): boolean {
  return addr.includes(":");
}

function route10(r: Route): Route {
  const out: Route = { dst: r.dst };
  if (r.gw !== undefined) out.gw = r.gw;
  return out;
}

function route11(r: Route): Route {
  const out = route10(r);
  if (r.mtu !== undefined) out.mtu = r.mtu;
  if (r.advmss !== undefined) out.advmss = r.advmss;
  if (r.priority !== undefined) out.priority = r.priority;
  if (r.table !== undefined) out.table = r.table;
  if (r.scope !== undefined) out.scope = r.scope;
  return out;
}

function iface10(i: Interface): Interface {
  const out: Interface = { name: i.name };
  if (i.mac !== undefined) out.mac = i.mac;
  if (i.sandbox !== undefined) out.sandbox = i.sandbox;
  return out;
}

function iface11(i: Interface): Interface {
  const out = iface10(i);
  if (i.mtu !== undefined) out.mtu = i.mtu;
  if (i.socketPath !== undefined) out.socketPath = i.socketPath;
  if (i.pciID !== undefined) out.pciID = i.pciID;
  return out;
}

function ip10(ip: IpConfig): IpConfig {
  const out: IpConfig = { address: ip.address };
  if (ip.gateway !== undefined) out.gateway = ip.gateway;
  if (ip.interface !== undefined) out.interface = ip.interface;
  return out;
}

/**
 * Converts an internal result into the wire form of `toVersion`.
 *
 * - 0.1.0/0.2.0: the first IPv4 address becomes `ip4`, the first IPv6
 *   address `ip6`; routes go under the family of their `dst` (dropped when
 *   that family has no address); `interfaces` is dropped; `dns` is copied.
 * - 0.3.0/0.3.1/0.4.0: `ips[].version` is added; 1.1.0-only fields dropped.
 * - 1.0.0: the 1.0 shape without the 1.1.0-only interface and route fields.
 * - 1.1.0: everything.
 *
 * Empty `interfaces`, `ips` and `routes` lists are omitted.
 *
 * @param result The result, in the internal shape.
 * @param toVersion The version to write.
 * @returns A new wire object with `cniVersion` set to `toVersion`.
 * @throws {CniError} Code 1 for an unsupported version; code 999 ("cannot
 * convert: no valid IP addresses") when a 0.1.0/0.2.0 result would have no
 * address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { convertResult } from "./version.ts";
 * const r = {
 *   cniVersion: "1.1.0",
 *   ips: [{ address: "10.0.0.5/24", gateway: "10.0.0.1" }],
 *   routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
 * };
 * assert.deepEqual(convertResult(r, "0.2.0"), {
 *   cniVersion: "0.2.0",
 *   ip4: {
 *     ip: "10.0.0.5/24",
 *     gateway: "10.0.0.1",
 *     routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
 *   },
 * });
 * ```
 */
export function convertResult(
  result: Result,
  toVersion: string,
): Record<string, unknown> {
  const version = negotiateVersion(toVersion);
  const ips = result.ips ?? [];
  const routes = result.routes ?? [];
  const ifaces = result.interfaces ?? [];
  const out: Record<string, unknown> = { cniVersion: version };
  if (version === "0.1.0" || version === "0.2.0") {
    const v4 = ips.find((ip) => !isV6(ip.address));
    const v6 = ips.find((ip) => isV6(ip.address));
    if (v4 === undefined && v6 === undefined) {
      throw new CniError(
        CODES.internal,
        `Cannot convert result to ${version}: no valid IP addresses`,
        { details: "cannot convert: no valid IP addresses" },
      );
    }
    for (
      const [key, ip, six] of [["ip4", v4, false], ["ip6", v6, true]] as const
    ) {
      if (ip === undefined) continue;
      const legacy: LegacyIpConfig = { ip: ip.address };
      if (ip.gateway !== undefined) legacy.gateway = ip.gateway;
      const own = routes.filter((r) => isV6(r.dst) === six).map(route10);
      if (own.length > 0) legacy.routes = own;
      out[key] = legacy;
    }
  } else if (compareVersions(version, "1.0.0") < 0) {
    if (ifaces.length > 0) out.interfaces = ifaces.map(iface10);
    if (ips.length > 0) {
      out.ips = ips.map((ip) => ({
        version: isV6(ip.address) ? "6" : "4",
        ...ip10(ip),
      }));
    }
    if (routes.length > 0) out.routes = routes.map(route10);
  } else {
    const full = version === "1.1.0";
    if (ifaces.length > 0) {
      out.interfaces = ifaces.map(full ? iface11 : iface10);
    }
    if (ips.length > 0) out.ips = ips.map(ip10);
    if (routes.length > 0) out.routes = routes.map(full ? route11 : route10);
  }
  if (result.dns !== undefined) out.dns = copyDns(result.dns);
  return out;
}

function decodeError(what: string, detail: string): CniError {
  return new CniError(
    CODES.decodeFailure,
    `Cannot decode result: ${what} ${detail}`,
  );
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(o: Record<string, unknown>, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== "string") {
    throw decodeError(`field "${where}.${key}"`, "must be a string");
  }
  return v;
}

function optStr(
  o: Record<string, unknown>,
  key: string,
  where: string,
): string | undefined {
  return o[key] === undefined ? undefined : str(o, key, where);
}

function optNum(
  o: Record<string, unknown>,
  key: string,
  where: string,
): number | undefined {
  const v = o[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw decodeError(`field "${where}.${key}"`, "must be a number");
  }
  return v;
}

function list(o: Record<string, unknown>, key: string): unknown[] {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw decodeError(`field "${key}"`, "must be a list");
  return v;
}

function obj(v: unknown, where: string): Record<string, unknown> {
  if (!isObject(v)) throw decodeError(`field "${where}"`, "must be an object");
  return v;
}

function parseRoute(v: unknown, where: string): Route {
  const o = obj(v, where);
  const r: Route = { dst: str(o, "dst", where) };
  const gw = optStr(o, "gw", where);
  if (gw !== undefined) r.gw = gw;
  for (const k of ["mtu", "advmss", "priority", "table", "scope"] as const) {
    const n = optNum(o, k, where);
    if (n !== undefined) r[k] = n;
  }
  return r;
}

function parseStrList(v: unknown, where: string): string[] {
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) {
    throw decodeError(`field "${where}"`, "must be a list of strings");
  }
  return [...v] as string[];
}

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

function parseDns(v: unknown): Dns {
  const o = obj(v, "dns");
  const dns: Dns = {};
  if (present(o.nameservers)) {
    dns.nameservers = parseStrList(o.nameservers, "dns.nameservers");
  }
  const domain = optStr(o, "domain", "dns");
  if (domain !== undefined) dns.domain = domain;
  if (present(o.search)) dns.search = parseStrList(o.search, "dns.search");
  if (present(o.options)) dns.options = parseStrList(o.options, "dns.options");
  return dns;
}

/**
 * Reads a result of any supported version into the internal shape.
 *
 * A 0.1.0/0.2.0 result's `ip4`/`ip6` become `ips` and their nested routes
 * move to `routes`; `ips[].version` of 0.3.x/0.4.0 is dropped. A result
 * without `cniVersion` is read by its shape (`ip4`/`ip6` as 0.2.0, else as
 * 1.1.0).
 *
 * @param json The decoded JSON document.
 * @returns The internal result; `cniVersion` is the version it was in.
 * @throws {CniError} Code 6 for a bad shape; code 1 for an unsupported
 * version.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseResult } from "./version.ts";
 * const r = parseResult({
 *   cniVersion: "0.3.1",
 *   ips: [{ version: "4", address: "10.0.0.5/24", gateway: "10.0.0.1" }],
 * });
 * assert.deepEqual(r, {
 *   cniVersion: "0.3.1",
 *   ips: [{ address: "10.0.0.5/24", gateway: "10.0.0.1" }],
 * });
 * ```
 */
export function parseResult(json: unknown): Result {
  if (!isObject(json)) {
    throw new CniError(
      CODES.decodeFailure,
      "Cannot decode result: it is not a JSON object",
    );
  }
  const legacyShape = json.ip4 !== undefined || json.ip6 !== undefined;
  const declared = json.cniVersion ??
    (legacyShape ? DEFAULT_VERSION : "1.1.0");
  const version = negotiateVersion(declared);
  const out: Result = { cniVersion: version };
  if (version === "0.1.0" || version === "0.2.0") {
    const ips: IpConfig[] = [];
    const routes: Route[] = [];
    for (const key of ["ip4", "ip6"] as const) {
      if (json[key] === undefined || json[key] === null) continue;
      const o = obj(json[key], key);
      const ip: IpConfig = { address: str(o, "ip", key) };
      const gw = optStr(o, "gateway", key);
      if (gw !== undefined) ip.gateway = gw;
      ips.push(ip);
      list(o, "routes").forEach((r, i) =>
        routes.push(parseRoute(r, `${key}.routes[${i}]`))
      );
    }
    if (ips.length > 0) out.ips = ips;
    if (routes.length > 0) out.routes = routes;
  } else {
    const ifaces = list(json, "interfaces").map((v, i) => {
      const where = `interfaces[${i}]`;
      const o = obj(v, where);
      const iface: Interface = { name: str(o, "name", where) };
      for (const k of ["mac", "sandbox", "socketPath", "pciID"] as const) {
        const s = optStr(o, k, where);
        if (s !== undefined) iface[k] = s;
      }
      const mtu = optNum(o, "mtu", where);
      if (mtu !== undefined) iface.mtu = mtu;
      return iface;
    });
    const ips = list(json, "ips").map((v, i) => {
      const where = `ips[${i}]`;
      const o = obj(v, where);
      const ip: IpConfig = { address: str(o, "address", where) };
      const gw = optStr(o, "gateway", where);
      if (gw !== undefined) ip.gateway = gw;
      const idx = optNum(o, "interface", where);
      if (idx !== undefined) ip.interface = idx;
      return ip;
    });
    const routes = list(json, "routes").map((r, i) =>
      parseRoute(r, `routes[${i}]`)
    );
    if (ifaces.length > 0) out.interfaces = ifaces;
    if (ips.length > 0) out.ips = ips;
    if (routes.length > 0) out.routes = routes;
  }
  if (json.dns !== undefined && json.dns !== null) out.dns = parseDns(json.dns);
  return out;
}
