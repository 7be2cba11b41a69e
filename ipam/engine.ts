/**
 * The IPAM engine: typed calls on the address pools of one state file
 * (`reserve`, `release`, `held`, `collect`, `status`). Its callers are the
 * `azure-vnet-ipam` CNI handlers, `azure-vnet`'s in-process route and the
 * state tool; none of them fakes a CNI request to reach it.
 *
 * Every call locks the state only for its read-modify-write. A reserve whose
 * refresh interval has not passed does no network I/O: one locked
 * transaction reads the state, reserves the lowest free address and saves.
 * When a refresh is due, the source is queried with the lock released, and
 * a second transaction merges, reserves and saves. Concurrent calls of the
 * engines of one process share one query of a source asked the same way
 * (timeout and retries), and after a failed query, calls with state to fall
 * back on leave the source alone for a few seconds (`refresh_gate.ts`).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { AzureHttpError } from "@vnet/azure";
import type { FetchFn, HostInterface } from "@vnet/azure";
import { CniError, CODES, flattenCause, PLUGIN_CODES } from "@vnet/cni";
import { formatIpv4Cidr, parseIpv4Cidr } from "@vnet/address";
import {
  allocate,
  familyOf,
  findReservation,
  gcReservations,
  hasFamily,
  release,
} from "./allocator.ts";
import type {
  Allocation,
  AllocationRequest,
  AttachmentKey,
} from "./allocator.ts";
import type { IpamConfig } from "./config.ts";
import { readBootId } from "./boot_id.ts";
import { FileStore } from "./file_store.ts";
import { MasterMacCache, masterNicFor, onMaster } from "./master.ts";
import { RefreshGate } from "./refresh_gate.ts";
import { mergePools, poolUsage, syncNicAddresses } from "./pool.ts";
import type { HostLink, NicSync, PoolSpec, PoolUsage } from "./pool.ts";
import {
  describeSource,
  fetchInterfaces,
  poolSpecsFor,
  readHostLinks,
  refreshDue,
} from "./source.ts";
import type { SourceOptions } from "./source.ts";
import { emptyIpamState, IPAM_STATE_FILE } from "./state.ts";
import type { IpamState } from "./state.ts";
import type { IpamStore } from "./store.ts";

const log = getLogger(["azure-vnet-ipam", "engine"]);

/** The default state directory. */
export const DEFAULT_STATE_DIR = "/var/run";

/** Options of {@link IpamEngine}; every one is injectable. */
export interface IpamEngineOptions {
  /** State directory of `azure-vnet-ipam.json`. Default `/var/run`. */
  stateDir?: string;
  /** A store to use instead of the state file (tests). */
  store?: IpamStore;
  /** `fetch` for the wireserver and IMDS. */
  fetch?: FetchFn;
  /** The host's links and MACs; default `Deno.networkInterfaces()`. */
  hostMacs?: () => HostLink[];
  /** Clock in epoch ms. Default `Date.now`. */
  now?: () => number;
  /**
   * An id of the current boot, compared with `sameBoot()` of
   * `boot_id.ts`. Default: the boot time from `osUptime` (`readBootId()`).
   */
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
 * The gate key of a query: the source and how it is asked (the effective
 * per-attempt timeout and retries). Callers share a query only when they
 * would have made the same one: a caller without state (2 retries) that
 * joined the query of a caller with state (no retry, perhaps a shorter
 * timeout) would fail with 11 where its own query would have succeeded.
 * The host's MACs and `master` are applied by each caller to the shared
 * answer ({@link poolSpecsFor}), so they are not part of the key.
 */
function sourceKey(
  config: IpamConfig,
  options: Pick<SourceOptions, "timeoutMs" | "retries">,
): string {
  const url = config.environment === "imds" ? config.imdsUrl : config.queryUrl;
  return [
    config.environment,
    url,
    `timeout=${options.timeoutMs ?? "default"}`,
    `retries=${options.retries ?? "default"}`,
  ].join(" ");
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

/**
 * The host's links for one call of the engine, read on first use only:
 * at most once, whether for the pools (static, refresh) or for the
 * master's MAC.
 */
class CallLinks {
  #read: () => HostLink[];
  #links: HostLink[] | undefined;

  constructor(read: () => HostLink[]) {
    this.#read = read;
  }

  /** True once the links were read. */
  get read(): boolean {
    return this.#links !== undefined;
  }

  /** The links, read now or on an earlier use. */
  get(): HostLink[] {
    return this.#links ??= this.#read();
  }
}

type AllocOutcome =
  | ({ kind: "done" } & Reservation)
  | { kind: "refresh"; hadState: boolean }
  | { kind: "failed"; error: unknown };

function reservationOf(a: Allocation): AddressReservation {
  return { ip: a.ip, subnet: a.pool.subnet, gateway: a.pool.gateway };
}

function done(a: Allocation, v6?: Allocation): AllocOutcome {
  return {
    kind: "done",
    ...reservationOf(a),
    ...(v6 === undefined ? {} : { ipv6: reservationOf(v6) }),
  };
}

/**
 * One address of each family the state has pools of (with `master`: pools
 * of its NIC): IPv4 (requested address and subnet honoured), then IPv6
 * when there is an IPv6 pool. A failed IPv6 allocation gives back a fresh
 * IPv4 one: both or neither.
 */
function allocateFamilies(
  state: IpamState,
  wanted: AllocationRequest,
): AllocOutcome {
  const v4 = allocate(state, wanted);
  if (!hasFamily(state, 6, { master: wanted.master })) return done(v4);
  try {
    return done(v4, allocate(state, { ...wanted, family: 6 }));
  } catch (err) {
    // A fresh IPv4 reservation goes back as it was found (a sticky
    // address keeps its memory of its last pod).
    if (v4.replaced !== undefined) v4.pool.addresses[v4.ip] = v4.replaced;
    throw err;
  }
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
  const wildcard = config.master === undefined
    ? ""
    : ` (a NIC with the wildcard MAC binds to master "${config.master}")`;
  return new CniError(err.code, err.message, {
    details: `Source ${
      describeSource(config)
    } reported no subnet on a NIC matching any host link by MAC${wildcard}`,
  });
}

/** An address an attachment holds: the dotted quad, its pool's subnet and gateway. */
export interface AddressReservation {
  /** The address (a dotted quad, or canonical IPv6 text). */
  readonly ip: string;
  /** The pool's subnet CIDR. */
  readonly subnet: string;
  /** The pool's gateway. */
  readonly gateway: string;
}

/**
 * What an attachment holds: its IPv4 address, and its IPv6 address when the
 * node has IPv6 pools (dual-stack).
 */
export interface Reservation extends AddressReservation {
  /** The IPv6 address, when the node has an IPv6 pool. */
  readonly ipv6?: AddressReservation;
}

/** What {@link IpamEngine.reserve} is asked for. */
export interface ReserveRequest {
  /** The validated `ipam` section: the source and its timings. */
  readonly config: IpamConfig;
  /** The network name recorded with the reservation (config `name`). */
  readonly network?: string | undefined;
  /** Restrict to the pool of this subnet CIDR. Default `config.subnet`. */
  readonly subnet?: string | undefined;
  /** A specific address to hand out. */
  readonly requestedIp?: string | undefined;
  /**
   * The pod, `namespace/name` ({@link podOf}); recorded and matched when
   * `config.sticky` is set (#16).
   */
  readonly pod?: string | undefined;
}

/** Usage of one pool, as {@link IpamEngine.status} reports it. */
export interface PoolStatus extends PoolUsage {
  /** The subnet CIDR. */
  readonly subnet: string;
  /** Addresses that can be handed out now (not held, stale or primary). */
  readonly free: number;
}

/** The network scope of {@link IpamEngine.release} and {@link IpamEngine.held}. */
export interface NetworkScope {
  /**
   * The calling network: only its reservations (and those recorded without
   * a network) are touched. Default: any network.
   */
  readonly network?: string | undefined;
}

/**
 * The process's master MACs, one cache per reader of the host's links (the
 * real one in production): the agent's ADDs share them.
 */
const MASTER_MACS = new WeakMap<object, MasterMacCache>();

/** The master MACs that the engines reading links with `read` share. */
function processMasterMacs(read: object): MasterMacCache {
  let cache = MASTER_MACS.get(read);
  if (cache === undefined) {
    cache = new MasterMacCache();
    MASTER_MACS.set(read, cache);
  }
  return cache;
}

/** The process's gates, one per `fetch` (the real one in production). */
const GATES = new WeakMap<object, RefreshGate<HostInterface[]>>();

/** The gate that the engines on `fetch` share. */
function processGate(fetch: object): RefreshGate<HostInterface[]> {
  let gate = GATES.get(fetch);
  if (gate === undefined) {
    gate = new RefreshGate();
    GATES.set(fetch, gate);
  }
  return gate;
}

/**
 * The address pools of one state file, with typed calls.
 *
 * Reboots (boot id changed) keep every reservation: the pods are gone, but
 * the runtime's GC and DEL release them, and dropping them here could hand
 * out an address a restarting pod still expects. A reboot only forces a
 * refresh.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { IpamEngine, parseIpamConfig } from "@vnet/ipam";
 * const dir = await Deno.makeTempDir();
 * const engine = new IpamEngine({ stateDir: dir, hostMacs: () => [] });
 * const config = parseIpamConfig({
 *   cniVersion: "1.1.0", name: "azure", type: "azure-vnet",
 *   ipam: { type: "azure-vnet-ipam", environment: "static",
 *     subnet: "10.0.0.0/24", addresses: ["10.0.0.4", "10.0.0.5"] },
 * });
 * const key = { containerId: "c1", ifName: "eth0" };
 * const r = await engine.reserve(key, { config, network: "azure" });
 * assert.equal(r.subnet, "10.0.0.0/24");
 * assert.deepEqual(await engine.release(key, { network: "azure" }), [r.ip]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class IpamEngine {
  #store: IpamStore;
  #now: () => number;
  #bootId: () => string;
  #source: SourceOptions;
  /**
   * One source query at a time, shared by the concurrent calls of every
   * engine of the process on the same `fetch` (the agent makes an engine
   * per call), and a back-off after a failure.
   */
  #gate: RefreshGate<HostInterface[]>;
  /** The host's links, `Deno.networkInterfaces()` unless injected. */
  #readLinks: () => HostLink[];
  /** Master MACs read within the refresh interval ({@link MasterMacCache}). */
  #masterMacs: MasterMacCache;

  /**
   * Creates the engine on `<stateDir>/azure-vnet-ipam.json` (nothing is
   * touched until the first call).
   *
   * @param options State dir or store, injectable fetch, host MACs, clock.
   */
  constructor(options: IpamEngineOptions = {}) {
    const dir = options.stateDir ?? DEFAULT_STATE_DIR;
    this.#store = options.store ?? new FileStore(
      `${dir.replace(/\/+$/, "") || "/"}/${IPAM_STATE_FILE}`,
      options.lockTimeoutMs === undefined
        ? {}
        : { lockTimeoutMs: options.lockTimeoutMs },
    );
    this.#now = options.now ?? Date.now;
    this.#bootId = options.bootId ?? (() => readBootId());
    this.#source = {
      fetch: options.fetch,
      hostMacs: options.hostMacs,
      timeoutMs: options.sourceTimeoutMs,
      retries: options.sourceRetries,
      sleep: options.sleep,
    };
    this.#readLinks = options.hostMacs ?? readHostLinks;
    // An injected clock gets a gate and master MACs of its own (tests).
    this.#gate = options.now === undefined
      ? processGate(options.fetch ?? globalThis.fetch)
      : new RefreshGate({ now: this.#now });
    this.#masterMacs = options.now === undefined
      ? processMasterMacs(this.#readLinks)
      : new MasterMacCache();
  }

  /**
   * Reserves an address for `key` (or returns the one it holds): the
   * requested address, else (sticky, #16) the address the pod released
   * last, else the lowest free one of the subnet's pool.
   * Refreshes the pools from the source first when the interval has passed.
   *
   * @param key The attachment (container id, ifname).
   * @param request The config, network, subnet and requested address.
   * @returns The reservation.
   * @throws {CniError} 100 when no address is free, 11 or 101 when the
   * source fails and no state exists, 11 on a lock timeout, 102 on a
   * corrupt state file.
   */
  async reserve(
    key: AttachmentKey,
    request: ReserveRequest,
  ): Promise<Reservation> {
    const { config } = request;
    const wanted = {
      ...key,
      requestedIp: request.requestedIp,
      subnet: request.subnet ?? config.subnet,
      network: request.network,
      pod: request.pod,
      sticky: config.sticky === undefined
        ? undefined
        : { cooldownMs: config.sticky.cooldownMs, now: this.#now() },
    };
    const { links, source } = this.#callSource();
    // With `master`, only its NIC's pools serve (`master.ts`).
    const allocation = (state: IpamState): AllocationRequest => ({
      ...wanted,
      master: masterNicFor(config.master, {
        pools: Object.values(state.pools),
        macOf: (name) => this.#masterMac(name, { links, config }),
      }),
    });
    const staticSpecs = config.environment === "static"
      ? poolSpecsFor(config, config.interfaces, source)
      : undefined;
    const ticket = this.#gate.ticket();
    const first = await this.#store.update<AllocOutcome>((state) => {
      const existing = findReservation(state, key);
      if (
        existing !== undefined &&
        (wanted.requestedIp === undefined ||
          wanted.requestedIp === existing.ip)
      ) {
        return {
          value: done(existing, findReservation(state, key, { family: 6 })),
        };
      }
      let next = state;
      if (staticSpecs !== undefined) {
        next = this.#applyRefresh(state, staticSpecs);
      } else if (this.#refreshDue(state, config)) {
        return { value: { kind: "refresh", hadState: state !== undefined } };
      }
      if (next === undefined) {
        return { value: { kind: "refresh", hadState: false } };
      }
      try {
        return { value: allocateFamilies(next, allocation(next)), next };
      } catch (error) {
        return staticSpecs === undefined
          ? { value: { kind: "failed", error } }
          : { value: { kind: "failed", error }, next };
      }
    });
    let outcome = first;
    if (first.kind === "refresh") {
      const fetched = await this.#fetchSpecs(config, {
        hadState: first.hadState,
        ticket,
        links,
      });
      outcome = await this.#store.update<AllocOutcome>((state) => {
        const next = fetched.specs === undefined
          ? state
          : this.#applyRefresh(state, fetched.specs);
        if (next === undefined) throw sourceFailure(config, fetched.error);
        try {
          return { value: allocateFamilies(next, allocation(next)), next };
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
      throw new CniError(CODES.internal, "IPAM reserve ended without a result");
    }
    log.info("Reserved {ip} from {subnet} for {containerId} {ifName}", {
      ...key,
      ip: outcome.ip,
      subnet: outcome.subnet,
    });
    const { kind: _kind, ...reservation } = outcome;
    if (reservation.ipv6 !== undefined) {
      log.info("Reserved {ip} from {subnet} for {containerId} {ifName}", {
        ...key,
        ip: reservation.ipv6.ip,
        subnet: reservation.ipv6.subnet,
      });
    }
    return reservation;
  }

  /**
   * Releases what `key` holds in `scope`'s network; nothing held is no
   * error.
   *
   * @param key The attachment.
   * @param scope The calling network.
   * @returns The released addresses.
   * @throws {CniError} 11 on a lock timeout, 102 on a corrupt state file.
   */
  async release(key: AttachmentKey, scope: NetworkScope): Promise<string[]> {
    const released = await this.#store.update((state) => {
      if (state === undefined) return { value: [] as string[] };
      const ips = release(state, key, {
        network: scope.network,
        now: this.#now(),
      });
      return ips.length === 0 ? { value: ips } : { value: ips, next: state };
    });
    log.info("Released {ips} of {containerId} {ifName}", {
      ...key,
      ips: released.length === 0 ? "nothing" : released.join(", "),
    });
    return released;
  }

  /**
   * The reservation `key` holds, read under the lock.
   *
   * @param key The attachment.
   * @returns The reservation, or undefined.
   */
  async held(key: AttachmentKey): Promise<Reservation | undefined> {
    const held = await this.#store.update((state) => ({
      value: [
        findReservation(state, key),
        findReservation(state, key, { family: 6 }),
      ] as const,
    }));
    const [a, v6] = held;
    if (a === undefined) return undefined;
    return {
      ...reservationOf(a),
      ...(v6 === undefined ? {} : { ipv6: reservationOf(v6) }),
    };
  }

  /**
   * Releases the reservations of `scope`'s network whose attachment is not
   * in `keep` (GC). Other networks' reservations are left alone.
   *
   * @param keep The attachments to keep.
   * @param scope The calling network.
   * @returns The attachments released.
   */
  async collect(
    keep: readonly AttachmentKey[],
    scope: NetworkScope,
  ): Promise<AttachmentKey[]> {
    const dropped = await this.#store.update((state) => {
      if (state === undefined) return { value: [] as AttachmentKey[] };
      const out = gcReservations(state, keep, {
        network: scope.network,
        now: this.#now(),
      });
      return out.length === 0 ? { value: out } : { value: out, next: state };
    });
    for (const k of dropped) {
      log.info("GC released {containerId} {ifName}", { ...k });
    }
    return dropped;
  }

  /**
   * Refreshes the pools when due and reports their usage (those of
   * `config.subnet` when set).
   *
   * @param config The validated `ipam` section.
   * @returns One entry per pool.
   * @throws {CniError} 50 when the source is unreachable and no state
   * exists.
   */
  async status(config: IpamConfig): Promise<PoolStatus[]> {
    const { links, source } = this.#callSource();
    const staticSpecs = config.environment === "static"
      ? poolSpecsFor(config, config.interfaces, source)
      : undefined;
    const ticket = this.#gate.ticket();
    const due = await this.#store.update((state) => ({
      value: {
        due: staticSpecs === undefined && this.#refreshDue(state, config),
        hadState: state !== undefined,
      },
    }));
    const fetched = due.due
      ? await this.#fetchSpecs(config, {
        hadState: due.hadState,
        ticket,
        links,
      })
      : {};
    const specs = staticSpecs ?? fetched.specs;
    const state = await this.#store.update((cur) => {
      if (specs === undefined) return { value: cur };
      const next = this.#applyRefresh(cur, specs);
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
    const pools = Object.values(state.pools);
    const master = masterNicFor(config.master, {
      pools,
      macOf: (name) => this.#masterMac(name, { links, config }),
    });
    return pools
      // `subnet` picks the pool of its own family (IPv4); `master` the
      // pools of its NIC.
      .filter((p) =>
        (want === undefined || p.subnet === want ||
          familyOf(p.subnet) === 6) && onMaster(p, master)
      )
      .map((p) => ({
        subnet: p.subnet,
        ...poolUsage(p),
        free:
          Object.entries(p.addresses).filter(([ip, r]) =>
            r.containerId === undefined && !r.stale &&
            !p.primaryIps.includes(ip)
          ).length,
      }));
  }

  /**
   * Makes the pools of a NIC carry exactly its secondary addresses, as ARM
   * reports them (the warm pool, #16): new addresses are free at once,
   * without waiting for the next refresh; free addresses the NIC lost (or
   * is about to lose, `withdrawn`, in a pool yet or not) are dropped and
   * kept out, so no reserve hands them out. Held addresses are never
   * dropped. Without a state file nothing changes (the first reserve's
   * refresh finds the addresses).
   *
   * @param nic The NIC's MAC (any form), secondary addresses and withdrawn
   * ones.
   * @returns The addresses added and removed.
   * @throws {CniError} 11 on a lock timeout, 102 on a corrupt state file.
   */
  async syncNic(
    nic: {
      macAddress: string;
      addresses: readonly string[];
      withdrawn?: readonly string[];
    },
  ): Promise<NicSync> {
    const out = await this.#store.update((state) => {
      if (state === undefined) {
        return { value: { added: [], removed: [] } as NicSync };
      }
      const value = syncNicAddresses(state, nic, { now: this.#now() });
      return value.added.length + value.removed.length === 0
        ? { value }
        : { value, next: state };
    });
    if (out.added.length + out.removed.length > 0) {
      log.info("NIC {mac}: added {added}, removed {removed}", {
        mac: nic.macAddress,
        added: out.added.join(", ") || "nothing",
        removed: out.removed.join(", ") || "nothing",
      });
    }
    return out;
  }

  /**
   * The host's links for one call, read at most once ({@link CallLinks}),
   * and the source options that read them.
   */
  #callSource(): { links: CallLinks; source: SourceOptions } {
    const links = new CallLinks(this.#readLinks);
    return { links, source: { ...this.#source, hostMacs: () => links.get() } };
  }

  /**
   * The MAC of the host link `name` (config `master`): from the links this
   * call read anyway (static pools, a refresh), else as this process read
   * it within the refresh interval, else read now.
   */
  #masterMac(
    name: string,
    call: { links: CallLinks; config: IpamConfig },
  ): string | undefined {
    const now = this.#now();
    if (!call.links.read) {
      const mac = this.#masterMacs.get(name, {
        now,
        maxAgeMs: call.config.queryIntervalMs,
      });
      if (mac !== undefined) return mac;
    }
    const mac = call.links.get().find((l) => l.name === name)?.mac;
    this.#masterMacs.set(name, { mac, now });
    return mac;
  }

  /**
   * Whether to query the source: the interval passed or the boot changed,
   * and, with state to fall back on, no query failed in the last few
   * seconds (the back-off of {@link RefreshGate}).
   */
  #refreshDue(state: IpamState | undefined, config: IpamConfig): boolean {
    return refreshDue(state, {
      intervalMs: config.queryIntervalMs,
      now: this.#now(),
      bootId: this.#bootId(),
    }) &&
      !(state !== undefined &&
        this.#gate.backingOff(
          this.#sourceQuery(config, { hadState: true }).key,
        ));
  }

  /**
   * How this engine asks the source for a caller: the options of
   * {@link fetchInterfaces} and the gate key they make.
   */
  #sourceQuery(
    config: IpamConfig,
    caller: { hadState: boolean },
  ): { options: SourceOptions; key: string } {
    const options = {
      ...this.#source,
      timeoutMs: this.#source.timeoutMs ?? config.queryTimeoutMs,
      // With state to fall back on, do not stall the reserve on retries.
      retries: caller.hadState ? 0 : this.#source.retries,
    };
    return { options, key: sourceKey(config, options) };
  }

  /**
   * Queries the source outside the lock, one query at a time for all the
   * calls of the process's engines that ask it the same way
   * ({@link RefreshGate}, {@link sourceKey}); the error (logged once per
   * query) on failure.
   */
  async #fetchSpecs(
    config: IpamConfig,
    caller: { hadState: boolean; ticket: number; links: CallLinks },
  ): Promise<{ specs?: PoolSpec[]; error?: unknown }> {
    const { options, key } = this.#sourceQuery(config, caller);
    const fetched = await this.#gate.query(key, async () => {
      try {
        return await fetchInterfaces(config, options);
      } catch (error) {
        log.warn("Refresh from {source} failed: {error}", {
          source: describeSource(config),
          error: flattenCause(error),
        });
        throw error;
      }
    }, { ticket: caller.ticket, fallback: caller.hadState });
    if (!fetched.ok) return { error: fetched.error };
    try {
      return {
        specs: poolSpecsFor(config, fetched.value, {
          ...this.#source,
          hostMacs: () => caller.links.get(),
        }),
      };
    } catch (error) {
      return { error };
    }
  }

  #applyRefresh(state: IpamState | undefined, specs: PoolSpec[]): IpamState {
    const next = state ?? emptyIpamState(this.#bootId());
    mergePools(next, specs, { now: this.#now() });
    next.lastRefresh = this.#now();
    next.bootId = this.#bootId();
    return next;
  }
}
