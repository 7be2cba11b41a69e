/**
 * The IPAM command handlers: the one engine behind both the
 * `azure-vnet-ipam` binary and the in-process fast path of `azure-vnet`.
 *
 * Every verb locks the state only for its read-modify-write. An ADD whose
 * refresh interval has not passed does no network I/O: one locked
 * transaction reads the state, reserves the lowest free address and saves.
 * When a refresh is due, the source is queried with the lock released, and
 * a second transaction merges, reserves and saves.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { AzureHttpError } from "@vnet/azure";
import type { FetchFn } from "@vnet/azure";
import {
  CniError,
  CODES,
  flattenCause,
  gcAttachments,
  PLUGIN_CODES,
} from "@vnet/cni";
import type { CmdArgs, PluginHandlers, Result } from "@vnet/cni";
import {
  formatIpv4Cidr,
  isIpv4,
  parseIpv4Cidr,
  stripPrefix,
} from "@vnet/address";
import {
  allocate,
  findReservation,
  gcReservations,
  release,
} from "./allocator.ts";
import type { Allocation, AttachmentKey } from "./allocator.ts";
import { parseIpamConfig } from "./config.ts";
import type { IpamConfig } from "./config.ts";
import { FileStore } from "./file_store.ts";
import { mergePools, poolUsage } from "./pool.ts";
import type { HostLink, PoolSpec } from "./pool.ts";
import {
  describeSource,
  fetchInterfaces,
  poolSpecsFor,
  refreshDue,
} from "./source.ts";
import type { SourceOptions } from "./source.ts";
import { emptyIpamState, IPAM_STATE_FILE } from "./state.ts";
import type { IpamState } from "./state.ts";
import type { IpamStore } from "./store.ts";

const log = getLogger(["azure-vnet-ipam", "engine"]);

/** The default state directory. */
export const DEFAULT_STATE_DIR = "/var/run";

/** Options of {@link createIpamHandlers}; every one is injectable. */
export interface IpamEngineOptions {
  /**
   * State directory. Default: `AZURE_VNET_STATE_DIR` from the invocation's
   * environment, else `/var/run`.
   */
  stateDir?: string;
  /** A store to use instead of the state file (tests). */
  store?: IpamStore;
  /** `fetch` for the wireserver and IMDS. */
  fetch?: FetchFn;
  /** The host's links and MACs; default `Deno.networkInterfaces()`. */
  hostMacs?: () => HostLink[];
  /** Clock in epoch ms. Default `Date.now`. */
  now?: () => number;
  /** An id of the current boot. Default: the boot time from `osUptime`. */
  bootId?: () => string;
  /** Bounded lock wait in ms (timeout: code 11). */
  lockTimeoutMs?: number;
  /** Per-attempt source timeout in ms (client default 5000). */
  sourceTimeoutMs?: number;
  /** Source retries when no state exists yet (client default 2). */
  sourceRetries?: number;
  /** Sleep between source retries. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * The boot time in minutes since the epoch, from `Deno.osUptime()`
 * (`--allow-sys=osUptime`). Deno refuses `/proc/sys/kernel/random/boot_id`
 * to anything short of `--allow-all`. A reboot changes the value; a rare
 * minute-boundary wobble only costs one extra source refresh.
 */
function readBootId(): string {
  try {
    const bootSec = Date.now() / 1000 - Deno.osUptime();
    return `boot-minute-${Math.round(bootSec / 60)}`;
  } catch {
    return "";
  }
}

function keyOf(args: CmdArgs): AttachmentKey {
  if (args.containerId === "") {
    throw new CniError(
      CODES.invalidEnvironment,
      "Missing CNI_CONTAINERID: it keys the address reservation",
    );
  }
  return { containerId: args.containerId, ifName: args.ifName };
}

/** The network name recorded with reservations; undefined when unset. */
function networkNameOf(args: CmdArgs): string | undefined {
  const name: unknown = args.config.name;
  return typeof name === "string" && name !== "" ? name : undefined;
}

/** The first IPv4 address requested by CNI_ARGS, runtimeConfig, args or ipam. */
function requestedIpOf(args: CmdArgs, config: IpamConfig): string | undefined {
  const conf = args.config;
  const cniArgs = (conf.args as { cni?: { ips?: unknown } } | undefined)?.cni;
  const candidates: unknown[] = [
    ...args.args.ips,
    ...(Array.isArray(conf.runtimeConfig?.ips) ? conf.runtimeConfig.ips : []),
    ...(Array.isArray(cniArgs?.ips) ? cniArgs.ips : []),
    config.ipAddress,
  ];
  for (const c of candidates) {
    if (typeof c === "string" && isIpv4(stripPrefix(c))) return stripPrefix(c);
  }
  return undefined;
}

function toResult(
  args: CmdArgs,
  config: IpamConfig,
  alloc: { ip: string; subnet: string; gateway: string },
): Result {
  const prefix = parseIpv4Cidr(alloc.subnet).prefixLength;
  const result: Result = {
    cniVersion: args.config.cniVersion,
    ips: [{ address: `${alloc.ip}/${prefix}`, gateway: alloc.gateway }],
    routes: [{ dst: "0.0.0.0/0", gw: alloc.gateway }],
  };
  if (config.dns !== undefined) result.dns = structuredClone(config.dns);
  return result;
}

function sourceFailure(config: IpamConfig, cause: unknown): CniError {
  // A timeout, 429, 5xx or a malformed document (a host agent mid-update)
  // may heal: try again later (11). Only a definite 4xx is 101.
  const transient = cause instanceof AzureHttpError ? cause.transient : true;
  return new CniError(
    transient ? CODES.tryAgainLater : PLUGIN_CODES.sourceFailed,
    `Cannot get the host's addresses from "${
      describeSource(config)
    }" and no IPAM state exists yet`,
    { cause },
  );
}

type AllocOutcome =
  | { kind: "done"; ip: string; subnet: string; gateway: string }
  | { kind: "refresh"; hadState: boolean }
  | { kind: "failed"; error: unknown };

function done(a: Allocation): AllocOutcome {
  return {
    kind: "done",
    ip: a.ip,
    subnet: a.pool.subnet,
    gateway: a.pool.gateway,
  };
}

/** Adds what was examined to a "no pool at all" exhaustion error. */
function explainNoPools(
  err: unknown,
  state: IpamState,
  config: IpamConfig,
): unknown {
  if (
    !(err instanceof CniError) || err.code !== PLUGIN_CODES.poolExhausted ||
    Object.keys(state.pools).length > 0
  ) return err;
  const master = config.master === undefined
    ? "any host link"
    : `master "${config.master}"`;
  return new CniError(err.code, err.message, {
    details: `Source ${
      describeSource(config)
    } reported no subnet on a NIC matching ${master} by MAC`,
  });
}

/**
 * Creates the IPAM handlers (ADD, DEL, CHECK, STATUS, GC).
 *
 * ADD returns the abbreviated IPAM result (`ips`, `routes`, `dns`) in the
 * internal shape; skel or the calling plugin converts it. DEL releases by
 * (container id, ifname) and succeeds when nothing is held. CHECK fails with
 * 106 when the reservation is missing or differs from `prevResult`. STATUS
 * fails with 50 when no address is free or the source is unreachable with no
 * state. GC releases the calling network's reservations (by config `name`,
 * recorded at ADD) not in `cni.dev/valid-attachments`; other networks'
 * reservations in the shared state file are left alone.
 *
 * Reboots (boot id changed) keep every reservation: the pods are gone, but
 * the runtime's GC and DEL release them, and dropping them here could hand
 * out an address a restarting pod still expects. A reboot only forces a
 * refresh.
 *
 * @param options State directory, injectable fetch, host MACs, clock, lock
 * timeout.
 * @returns The handlers.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createIpamHandlers } from "@vnet/ipam";
 * const handlers = createIpamHandlers({ stateDir: await Deno.makeTempDir() });
 * assert.equal(typeof handlers.cmdAdd, "function");
 * ```
 */
export function createIpamHandlers(
  options: IpamEngineOptions = {},
): PluginHandlers {
  const now = options.now ?? Date.now;
  const bootIdOf = options.bootId ?? readBootId;
  const source: SourceOptions = {
    fetch: options.fetch,
    hostMacs: options.hostMacs,
    timeoutMs: options.sourceTimeoutMs,
    retries: options.sourceRetries,
    sleep: options.sleep,
  };

  function storeFor(args: CmdArgs): IpamStore {
    if (options.store !== undefined) return options.store;
    const dir = options.stateDir ?? args.env.AZURE_VNET_STATE_DIR ??
      DEFAULT_STATE_DIR;
    const path = `${dir.replace(/\/+$/, "") || "/"}/${IPAM_STATE_FILE}`;
    return new FileStore(
      path,
      options.lockTimeoutMs === undefined
        ? {}
        : { lockTimeoutMs: options.lockTimeoutMs },
    );
  }

  /** Queries the source outside the lock; undefined (logged) on failure. */
  async function fetchSpecs(
    config: IpamConfig,
    hadState: boolean,
  ): Promise<{ specs?: PoolSpec[]; error?: unknown }> {
    try {
      const nics = await fetchInterfaces(config, {
        ...source,
        timeoutMs: source.timeoutMs ?? config.queryTimeoutMs,
        // With state to fall back on, do not stall the ADD on retries.
        retries: hadState ? 0 : source.retries,
      });
      return { specs: poolSpecsFor(config, nics, source) };
    } catch (error) {
      log.warn("Refresh from {source} failed: {error}", {
        source: describeSource(config),
        error: flattenCause(error),
      });
      return { error };
    }
  }

  function applyRefresh(
    state: IpamState | undefined,
    specs: PoolSpec[],
  ): IpamState {
    const next = state ?? emptyIpamState(bootIdOf());
    mergePools(next, specs);
    next.lastRefresh = now();
    next.bootId = bootIdOf();
    return next;
  }

  async function cmdAdd(args: CmdArgs): Promise<Result> {
    const config = parseIpamConfig(args.config);
    const key = keyOf(args);
    const request = {
      ...key,
      requestedIp: requestedIpOf(args, config),
      subnet: config.subnet,
      network: networkNameOf(args),
    };
    const store = storeFor(args);
    const isStatic = config.environment === "static";
    const staticSpecs = isStatic
      ? poolSpecsFor(config, config.interfaces, source)
      : undefined;

    const first = await store.update<AllocOutcome>((state) => {
      const existing = findReservation(state, key);
      if (
        existing !== undefined &&
        (request.requestedIp === undefined ||
          request.requestedIp === existing.ip)
      ) {
        return { value: done(existing) };
      }
      let next = state;
      if (staticSpecs !== undefined) next = applyRefresh(state, staticSpecs);
      else if (
        refreshDue(state, {
          intervalMs: config.queryIntervalMs,
          now: now(),
          bootId: bootIdOf(),
        })
      ) return { value: { kind: "refresh", hadState: state !== undefined } };
      if (next === undefined) {
        return { value: { kind: "refresh", hadState: false } };
      }
      try {
        return { value: done(allocate(next, request)), next };
      } catch (error) {
        return staticSpecs === undefined
          ? { value: { kind: "failed", error } }
          : { value: { kind: "failed", error }, next };
      }
    });

    let outcome = first;
    if (first.kind === "refresh") {
      const fetched = await fetchSpecs(config, first.hadState);
      outcome = await store.update<AllocOutcome>((state) => {
        if (fetched.specs === undefined && state === undefined) {
          throw sourceFailure(config, fetched.error);
        }
        const next = fetched.specs === undefined
          ? state
          : applyRefresh(state, fetched.specs);
        if (next === undefined) throw sourceFailure(config, fetched.error);
        try {
          return { value: done(allocate(next, request)), next };
        } catch (error) {
          const value: AllocOutcome = {
            kind: "failed",
            error: explainNoPools(error, next, config),
          };
          return fetched.specs === undefined ? { value } : { value, next };
        }
      });
    }
    if (outcome.kind === "failed") throw outcome.error;
    if (outcome.kind !== "done") {
      throw new CniError(CODES.internal, "IPAM ADD ended without a result");
    }
    log.info("ADD {containerId} {ifName}: {ip} from {subnet}", {
      ...key,
      ip: outcome.ip,
      subnet: outcome.subnet,
    });
    return toResult(args, config, outcome);
  }

  async function cmdDel(args: CmdArgs): Promise<void> {
    if (args.containerId === "") return;
    const key = keyOf(args);
    const released = await storeFor(args).update((state) => {
      if (state === undefined) return { value: [] as string[] };
      const ips = release(state, key, { network: networkNameOf(args) });
      return ips.length === 0 ? { value: ips } : { value: ips, next: state };
    });
    log.info("DEL {containerId} {ifName}: released {ips}", {
      ...key,
      ips: released.length === 0 ? "nothing" : released.join(", "),
    });
  }

  async function cmdCheck(args: CmdArgs): Promise<void> {
    parseIpamConfig(args.config);
    const key = keyOf(args);
    const held = await storeFor(args).update((state) => ({
      value: findReservation(state, key),
    }));
    if (held === undefined) {
      throw new CniError(
        PLUGIN_CODES.checkFailed,
        `No address reserved for container "${key.containerId}" interface "${key.ifName}"`,
      );
    }
    const prev = args.config.prevResult as { ips?: unknown } | undefined;
    if (Array.isArray(prev?.ips)) {
      const listed = prev.ips.some((e: unknown) =>
        typeof (e as { address?: unknown }).address === "string" &&
        stripPrefix((e as { address: string }).address) === held.ip
      );
      if (!listed) {
        throw new CniError(
          PLUGIN_CODES.checkFailed,
          `Reserved address "${held.ip}" of container "${key.containerId}" is not in prevResult`,
        );
      }
    }
  }

  async function cmdStatus(args: CmdArgs): Promise<void> {
    const config = parseIpamConfig(args.config);
    const store = storeFor(args);
    const staticSpecs = config.environment === "static"
      ? poolSpecsFor(config, config.interfaces, source)
      : undefined;
    const due = await store.update((state) => ({
      value: {
        due: staticSpecs === undefined && refreshDue(state, {
          intervalMs: config.queryIntervalMs,
          now: now(),
          bootId: bootIdOf(),
        }),
        hadState: state !== undefined,
      },
    }));
    const fetched = due.due ? await fetchSpecs(config, due.hadState) : {};
    const specs = staticSpecs ?? fetched.specs;
    const state = await store.update((cur) => {
      if (specs === undefined) return { value: cur };
      const next = applyRefresh(cur, specs);
      return { value: next, next };
    });
    if (state === undefined) {
      throw new CniError(
        CODES.notAvailable,
        `Source "${
          describeSource(config)
        }" is unreachable and no IPAM state exists`,
        fetched.error === undefined ? {} : { cause: fetched.error },
      );
    }
    const want = config.subnet === undefined
      ? undefined
      : formatIpv4Cidr(parseIpv4Cidr(config.subnet));
    const pools = Object.values(state.pools).filter((p) =>
      want === undefined || p.subnet === want
    );
    const free = pools.some((p) =>
      Object.entries(p.addresses).some(([ip, r]) =>
        r.containerId === undefined && !r.stale && !p.primaryIps.includes(ip)
      )
    );
    if (!free) {
      throw new CniError(
        CODES.notAvailable,
        `No free address in ${
          pools.length === 0
            ? "any address pool (none known)"
            : pools.map((p) => {
              const u = poolUsage(p);
              return `subnet ${p.subnet}: ${u.used} of ${u.total} in use`;
            }).join("; ")
        }`,
      );
    }
  }

  async function cmdGc(args: CmdArgs): Promise<void> {
    const valid = gcAttachments(args.config, { required: true });
    const keys = valid.map((a) => ({
      containerId: String(a.containerID),
      ifName: String(a.ifname ?? ""),
    }));
    const dropped = await storeFor(args).update((state) => {
      if (state === undefined) return { value: [] as AttachmentKey[] };
      const out = gcReservations(state, keys, {
        network: networkNameOf(args),
      });
      return out.length === 0 ? { value: out } : { value: out, next: state };
    });
    for (const k of dropped) {
      log.info("GC released {containerId} {ifName}", { ...k });
    }
  }

  return { cmdAdd, cmdDel, cmdCheck, cmdStatus, cmdGc };
}
