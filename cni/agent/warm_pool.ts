/**
 * The warm pool controller (#16): keeps the free addresses on the node's
 * NIC between `warmMin` and `warmMax` by adding or removing secondary IP
 * configurations through ARM, one batched NIC update at a time.
 *
 * A pass reads the NIC (one GET), the IPAM state (unlocked) and plans with
 * the pure {@link planWarmPool}. A shrink first withdraws the chosen free
 * addresses from the IPAM under its lock (`IpamEngine.syncNic`), so no ADD
 * can reserve an address ARM is about to remove, and removes only those it
 * withdrew. After a successful update the IPAM takes the NIC's new
 * addresses at once. Passes run every `intervalMs`, after each ADD and DEL
 * ({@link WarmPool.kick}) and right after an update; two updates are at
 * least `minUpdateIntervalMs` apart. A 429, a 5xx or no answer backs off
 * exponentially up to `maxBackoffMs`, at least ARM's `Retry-After`; ADDs
 * keep using the free addresses that remain meanwhile. A failed update may
 * have landed all the same, so the pool reads the NIC again and the IPAM
 * takes what ARM has: nothing withdrawn comes back unless a GET shows it.
 *
 * The Azure SDK is loaded (by `@vnet/arm`, with a dynamic `import()`) on
 * the first pass only, so an agent without a warm pool never pays for it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { ArmNic, NicModel } from "@vnet/arm";
import { CniError, CODES, PLUGIN_CODES } from "@vnet/cni";
import type { PluginHandlers } from "@vnet/cni";
import { IPAM_STATE_FILE, IpamEngine, readIpamState } from "@vnet/ipam";
import type { IpamState, NicSync } from "@vnet/ipam";
import type { AgentConfig, WarmPoolSettings } from "./config.ts";
import {
  isPoolSecondary,
  type NicIpConfig,
  planWarmPool,
} from "./warm_plan.ts";

const log = getLogger(["azure-vnet-agent", "warm-pool"]);

/** The first backoff after a failure; it doubles up to `maxBackoffMs`. */
const BASE_BACKOFF_MS = 1000;

/**
 * Stale-etag refusals (412) in a row that re-plan at once; after more the
 * pool backs off as after a failure (something keeps writing the NIC).
 */
const MAX_CONFLICTS = 3;

/**
 * How long a failure that waiting will not heal (403, `SubnetIsFull`, no
 * NIC) stays recent beyond `maxBackoffMs`, the longest gap between two
 * tries that each renew it: ADDs fail fast meanwhile.
 */
const HARD_FAILURE_GRACE_MS = 60_000;

/** Counts ARM requests (`azure_vnet_arm_requests_total`). */
export interface ArmObserver {
  observeArm(request: { operation: string; result: string }): void;
}

/** Options of {@link WarmPool}. */
export interface WarmPoolOptions {
  /** The warm settings. */
  readonly settings: WarmPoolSettings;
  /** The cloud endpoints (ARM, IMDS, the CA of ARM's TLS). */
  readonly cloud: AgentConfig["cloud"];
  /** The agent's state directory (the IPAM state's). */
  readonly stateDir: string;
  /** Counts each ARM request. */
  readonly metrics: ArmObserver;
  /**
   * Binds the NIC; default `openNic` of `@vnet/arm` (dynamic import) with
   * the SDK's own retries off, so this controller backs off itself.
   */
  readonly openNic?: () => Promise<ArmNic>;
  /** The IPAM engine; default one on `stateDir`. */
  readonly engine?: IpamEngine;
  /** Clock in epoch ms; default `Date.now`. */
  readonly now?: () => number;
  /** LRO poll interval of the NIC update in ms (default 1000). */
  readonly pollIntervalMs?: number;
  /** Called after each pass (the agent writes its buffered log lines). */
  readonly onPass?: (pass: WarmPass) => void | Promise<void>;
  /**
   * The node's own addresses, never counted free nor removed; default
   * every address of `Deno.networkInterfaces()` (none without the
   * permission).
   */
  readonly hostAddresses?: () => readonly string[];
}

/** Every address of the node's interfaces; none when it may not look. */
function readHostAddresses(): string[] {
  try {
    return Deno.networkInterfaces().map((i) => i.address);
  } catch {
    return [];
  }
}

/** What one pass did. */
export interface WarmPass {
  /**
   * `backoff`, `rate` (too soon after an update), `idle`, `updated`,
   * `conflict` (the NIC changed since the GET: planning again at once),
   * `failed`.
   */
  readonly outcome:
    | "backoff"
    | "rate"
    | "idle"
    | "updated"
    | "conflict"
    | "failed";
  /** Names added and removed by the update. */
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Free addresses the plan saw. */
  readonly free?: number;
}

function ipConfigsOf(model: NicModel): NicIpConfig[] {
  return (model.ipConfigurations ?? []).map((c) => ({
    name: c.name ?? "",
    address: c.privateIPAddress,
    primary: c.primary === true,
    ipv6: c.privateIPAddressVersion === "IPv6",
  }));
}

/**
 * The IPv4 secondaries the IPAM syncs: what the warm pool keeps, without
 * the host's own addresses (the node holds them; no pod may get one).
 */
function secondaryAddresses(
  configs: readonly NicIpConfig[],
  own: ReadonlySet<string>,
): string[] {
  return configs.flatMap((c) =>
    isPoolSecondary(c) && c.address !== undefined && !own.has(c.address)
      ? [c.address]
      : []
  );
}

/**
 * The addresses the plan must not count as free: held ones (stale too),
 * every pool's primary addresses (the IPAM counts the host's own among
 * them) and the host's addresses; and free ones remembered for a pod.
 */
function usage(
  state: IpamState | undefined,
  own: ReadonlySet<string>,
): { inUse: Set<string>; remembered: Set<string> } {
  const inUse = new Set<string>(own);
  const remembered = new Set<string>();
  for (const pool of Object.values(state?.pools ?? {})) {
    for (const ip of pool.primaryIps) inUse.add(ip);
    for (const [ip, rec] of Object.entries(pool.addresses)) {
      if (rec.containerId !== undefined) inUse.add(ip);
      else if (rec.lastPod !== undefined) remembered.add(ip);
    }
  }
  return { inUse, remembered };
}

/**
 * The warm pool controller of one node.
 *
 * @example Usage
 * ```ts ignore
 * const pool = new WarmPool({ settings, cloud, stateDir, metrics });
 * pool.start();
 * // after an ADD or DEL:
 * pool.kick();
 * await pool.close();
 * ```
 */
export class WarmPool {
  #settings: WarmPoolSettings;
  #cloud: AgentConfig["cloud"];
  #metrics: ArmObserver;
  #openNic: () => Promise<ArmNic>;
  #onPass: ((pass: WarmPass) => void | Promise<void>) | undefined;
  #engine: IpamEngine;
  #statePath: string;
  #now: () => number;
  #hostAddresses: () => readonly string[];
  #nic: ArmNic | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  #running: Promise<WarmPass> | undefined;
  #again = false;
  #closed = false;
  #lastUpdate = -Infinity;
  #backoffUntil = 0;
  #failures = 0;
  #conflicts = 0;
  #hardFailure: { at: number; what: string } | undefined;
  #atLimit = false;
  #wantsGrowth = false;
  #waiters: ((outcome: { grew: boolean }) => void)[] = [];

  /**
   * Creates the controller; nothing runs before {@link WarmPool.start}.
   *
   * @param options Settings, endpoints, state dir, metrics, test seams.
   */
  constructor(options: WarmPoolOptions) {
    this.#settings = options.settings;
    this.#cloud = options.cloud;
    this.#metrics = options.metrics;
    this.#statePath = `${options.stateDir}/${IPAM_STATE_FILE}`;
    this.#engine = options.engine ??
      new IpamEngine({ stateDir: options.stateDir });
    this.#now = options.now ?? Date.now;
    this.#onPass = options.onPass;
    this.#hostAddresses = options.hostAddresses ?? readHostAddresses;
    const pollIntervalMs = options.pollIntervalMs;
    this.#openNic = options.openNic ?? (async () => {
      const { classifyArmError, openNic } = await import("@vnet/arm");
      return await openNic({
        nicId: this.#settings.nicId,
        imdsUrl: this.#cloud.imdsUrl,
        armEndpoint: this.#cloud.armEndpoint,
        caFile: this.#cloud.caFile,
        maxRetries: 0,
        pollIntervalMs,
        // A poll or a read that failed and was retried is a request too.
        onRetry: (a) =>
          this.#metrics.observeArm({
            operation: a.operation,
            result: classifyArmError(
              "status" in a ? { statusCode: a.status } : a.error,
            ).result,
          }),
      });
    });
  }

  /** True when the last plan wanted more ipconfigs than the NIC may have. */
  get atLimit(): boolean {
    return this.#atLimit;
  }

  /** True while the last plan wanted to grow and no update has done it. */
  get growing(): boolean {
    return this.#wantsGrowth;
  }

  /**
   * The last ARM failure, while it is recent and one that waiting will not
   * heal (a 4xx other than 429 and 412, a failed operation such as
   * `SubnetIsFull`, no NIC found): what it was, for an error's details;
   * undefined otherwise. A later success or transient failure clears it.
   */
  get hardFailure(): string | undefined {
    const f = this.#hardFailure;
    if (f === undefined) return undefined;
    const age = this.#now() - f.at;
    return age >= 0 &&
        age < this.#settings.maxBackoffMs + HARD_FAILURE_GRACE_MS
      ? f.what
      : undefined;
  }

  /** Runs a first pass now, then one every `intervalMs`. */
  start(): void {
    this.#schedule(0);
  }

  /** Asks for a pass soon (after an ADD or DEL). */
  kick(): void {
    this.#schedule(0);
  }

  /**
   * Waits until an update grows the NIC, at most `ms`.
   *
   * @param ms The bound.
   * @returns True when the NIC grew, false on timeout or close.
   */
  waitForGrowth(ms: number): Promise<boolean> {
    const notGrown = false;
    if (this.#closed) return Promise.resolve(notGrown);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve(notGrown);
      }, ms);
      const done = (outcome: { grew: boolean }) => {
        clearTimeout(timer);
        resolve(outcome.grew);
      };
      this.#waiters.push(done);
    });
  }

  /**
   * Runs one pass now, after the one running (if any) has finished, so
   * its result reflects the pool as it is at the call or later.
   *
   * @returns What it did.
   */
  async runOnce(): Promise<WarmPass> {
    while (this.#running !== undefined) await this.#running;
    const running = this.#pass().catch((err) => {
      log.error("Warm pool pass failed: {err}", {
        err: err instanceof Error ? err.message : String(err),
      });
      return { outcome: "failed" as const, added: [], removed: [] };
    }).then(async (pass: WarmPass) => {
      await Promise.resolve(this.#onPass?.(pass)).catch(() => {});
      return pass;
    }).finally(() => {
      this.#running = undefined;
      if (this.#closed) return;
      if (this.#again) {
        this.#again = false;
        this.#schedule(0);
      } else {
        this.#schedule(this.#settings.intervalMs);
      }
    });
    this.#running = running;
    return await running;
  }

  /** Stops the timer and waits for the pass in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const w of this.#waiters.splice(0)) w({ grew: false });
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    const at = this.#now() + ms;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerAt = Infinity;
      if (this.#running === undefined) this.runOnce();
      else this.#again = true;
    }, ms);
  }

  async #arm<T>(operation: string, call: () => Promise<T>): Promise<T> {
    try {
      const out = await call();
      this.#metrics.observeArm({ operation, result: "ok" });
      return out;
    } catch (err) {
      const { classifyArmError } = await import("@vnet/arm");
      this.#metrics.observeArm({
        operation,
        result: classifyArmError(err).result,
      });
      throw err;
    }
  }

  /** Backs off after a failure; returns the pass result. */
  async #fail(operation: string, err: unknown): Promise<WarmPass> {
    const { classifyArmError } = await import("@vnet/arm");
    const f = classifyArmError(err);
    this.#failures++;
    const exp = Math.min(
      this.#settings.maxBackoffMs,
      BASE_BACKOFF_MS * 2 ** (this.#failures - 1),
    );
    const wait = Math.min(
      this.#settings.maxBackoffMs,
      Math.max(exp, f.retryAfterMs ?? 0),
    );
    this.#backoffUntil = this.#now() + wait;
    this.#hardFailure = f.transient ? undefined : {
      at: this.#now(),
      what: `ARM ${operation} failed (${
        [f.result, f.status, f.code].filter((x) => x !== undefined).join(" ")
      }): ${err instanceof Error ? err.message : String(err)}`,
    };
    if (!f.transient) {
      // Waiting ADDs fail now rather than at the end of their wait.
      for (const w of this.#waiters.splice(0)) w({ grew: false });
    }
    log.warning(
      "ARM {operation} failed ({result}{status}); next try in {wait} ms: {err}",
      {
        operation,
        result: f.result,
        status: f.status === undefined ? "" : ` ${f.status}`,
        wait,
        err: err instanceof Error ? err.message : String(err),
      },
    );
    this.#schedule(wait);
    return { outcome: "failed", added: [], removed: [] };
  }

  /** The node's own addresses, now. */
  #ownAddresses(): Set<string> {
    return new Set(this.#hostAddresses());
  }

  /**
   * The IPAM takes the NIC's secondary addresses and keeps `withdrawn` out
   * (no MAC: nothing).
   */
  async #sync(
    mac: string,
    addresses: readonly string[],
    withdrawn: readonly string[] = [],
  ): Promise<NicSync | undefined> {
    if (mac === "") return undefined;
    return await this.#engine.syncNic({
      macAddress: mac,
      addresses,
      withdrawn,
    });
  }

  /**
   * After a failed update, which ARM may have applied all the same (a poll
   * failed after the PUT landed): reads the NIC again (retrying) and makes
   * the IPAM carry what ARM has. Withdrawn addresses come back only when
   * that read shows them, and not while ARM still applies an update; when
   * the read fails too, nothing comes back (a later pass syncs).
   */
  async #resync(
    nic: ArmNic,
    what: { mac: string; withdrawn: ReadonlyMap<string, string> },
  ): Promise<void> {
    let model: NicModel;
    try {
      model = await this.#arm("get", () => nic.get({ retry: true }));
    } catch (err) {
      log.warning(
        "Cannot read NIC {name} after the failed update; {count} withdrawn addresses stay out of the IPAM until a pass reads it: {err}",
        {
          name: nic.ref.name,
          count: what.withdrawn.size,
          err: err instanceof Error ? err.message : String(err),
        },
      );
      return;
    }
    const updating = model.provisioningState === "Updating";
    const addresses = secondaryAddresses(
      ipConfigsOf(model),
      this.#ownAddresses(),
    ).filter((ip) => !(updating && what.withdrawn.has(ip)));
    const out = await this.#sync(model.macAddress ?? what.mac, addresses)
      .catch(() => undefined);
    if ((out?.added.length ?? 0) > 0) {
      // The update landed after all: waiting ADDs may find an address.
      for (const w of this.#waiters.splice(0)) w({ grew: true });
    }
  }

  async #pass(): Promise<WarmPass> {
    const none = { added: [], removed: [] };
    if (this.#now() < this.#backoffUntil) {
      this.#schedule(this.#backoffUntil - this.#now());
      return { outcome: "backoff", ...none };
    }
    if (this.#nic === undefined) {
      try {
        this.#nic = await this.#openNic();
        log.info("Warm pool on NIC {name} in {rg}", {
          name: this.#nic.ref.name,
          rg: this.#nic.ref.resourceGroup,
        });
      } catch (err) {
        const { classifyArmError } = await import("@vnet/arm");
        this.#metrics.observeArm({
          operation: "discover",
          result: classifyArmError(err).result,
        });
        return await this.#fail("discover", err);
      }
    }
    const nic = this.#nic;
    let model: NicModel;
    try {
      model = await this.#arm("get", () => nic.get());
    } catch (err) {
      return await this.#fail("get", err);
    }
    const mac = model.macAddress ?? "";
    const configs = ipConfigsOf(model);
    const own = this.#ownAddresses();
    const secondaries = secondaryAddresses(configs, own);
    const { inUse, remembered } = usage(
      await readIpamState(this.#statePath),
      own,
    );
    const s = this.#settings;
    const plan = planWarmPool({
      ipConfigs: configs,
      inUse,
      remembered,
      warmMin: s.warmMin,
      warmMax: s.warmMax,
      maxIpConfigs: s.maxIpConfigs,
    });
    this.#atLimit = plan.atLimit && plan.add.length === 0;
    this.#wantsGrowth = plan.add.length > 0;
    if (plan.add.length === 0 && plan.remove.length === 0) {
      // Whatever ARM has, the IPAM has (an update by someone else too).
      await this.#sync(mac, secondaries);
      this.#failures = 0;
      this.#conflicts = 0;
      this.#hardFailure = undefined;
      return { outcome: "idle", free: plan.free, ...none };
    }
    const wait = this.#lastUpdate + s.minUpdateIntervalMs - this.#now();
    if (wait > 0) {
      this.#schedule(wait);
      return { outcome: "rate", free: plan.free, ...none };
    }
    let remove = plan.remove;
    const going = new Map(
      configs.filter((c) => remove.includes(c.name)).map((c) => [
        c.address ?? "",
        c.name,
      ]),
    );
    if (remove.length > 0) {
      // Withdraw first: only addresses free under the IPAM's lock go. Each
      // is kept out of the pools, even one no pool had yet (the NIC got it
      // after the last refresh), so that a refresh before the PUT ends
      // cannot hand it out.
      await this.#sync(
        mac,
        secondaries.filter((ip) => !going.has(ip)),
        [...going.keys()],
      );
      const held = usage(await readIpamState(this.#statePath), own).inUse;
      remove = [...going].filter(([ip]) => !held.has(ip)).map(([, n]) => n);
    }
    if (plan.add.length === 0 && remove.length === 0) {
      return { outcome: "idle", free: plan.free, ...none };
    }
    log.info("Updating NIC {name}: {free} free, add {add}, remove {remove}", {
      name: nic.ref.name,
      free: plan.free,
      add: plan.add.join(", ") || "none",
      remove: remove.join(", ") || "none",
    });
    let updated: NicModel;
    try {
      updated = await this.#arm(
        "update",
        () => nic.update(model, { add: plan.add, remove }),
      );
    } catch (err) {
      const { ArmConflictError } = await import("@vnet/arm");
      if (
        err instanceof ArmConflictError && ++this.#conflicts <= MAX_CONFLICTS
      ) {
        // Someone else changed the NIC since the GET; nothing was applied.
        // The next pass, at once, reads it again, plans again, and gives
        // back what is still withdrawn and still on the NIC.
        log.info("NIC {name} changed since it was read; planning again", {
          name: nic.ref.name,
        });
        this.#again = true;
        return { outcome: "conflict", free: plan.free, ...none };
      }
      await this.#resync(nic, { mac, withdrawn: going });
      return await this.#fail("update", err);
    }
    this.#lastUpdate = this.#now();
    this.#failures = 0;
    this.#conflicts = 0;
    this.#hardFailure = undefined;
    const after = secondaryAddresses(ipConfigsOf(updated), own);
    await this.#sync(updated.macAddress ?? mac, after);
    if (plan.add.length > 0) {
      this.#wantsGrowth = false;
      for (const w of this.#waiters.splice(0)) w({ grew: true });
    }
    this.#again = true;
    return {
      outcome: "updated",
      free: plan.free,
      added: plan.add,
      removed: remove,
    };
  }
}

/**
 * Fails an exhausted ADD at once while the pool's last ARM failure is one
 * that waiting will not heal: the exhaustion error, with that failure in
 * its details (and a kick, so the pool tries again when its backoff ends).
 */
function throwIfCannotGrow(err: CniError, pool: WarmPool): void {
  const failure = pool.hardFailure;
  if (failure === undefined) return;
  pool.kick();
  throw new CniError(err.code, err.message, {
    details: [err.details, `the warm pool cannot grow the NIC: ${failure}`]
      .filter((d) => d !== undefined && d !== "").join("; "),
    cause: err,
  });
}

/**
 * Wraps a plugin's handlers so an ADD that finds no free address while the
 * warm pool can still grow waits for the growth (up to `scaleUpWaitMs`) and
 * tries once more; if the NIC did not grow in time the ADD fails with 11
 * (try again later). A NIC at its limit keeps 100, and so does an ADD while
 * the pool's last ARM failure is recent and one that waiting will not heal
 * (403, `SubnetIsFull`...), at once and with that failure in its details.
 *
 * @param handlers The plugin's handlers.
 * @param pool The warm pool, how long an ADD may wait, and how it waits
 * (`idle`: the request's slot is free meanwhile; default a plain await).
 * @returns Handlers with that ADD.
 */
export function withScaleUpWait(
  handlers: PluginHandlers,
  pool: {
    pool: WarmPool;
    waitMs: number;
    idle?: <T>(wait: Promise<T>) => Promise<T>;
  },
): PluginHandlers {
  const idle = pool.idle ?? (<T>(wait: Promise<T>) => wait);
  return {
    ...handlers,
    async cmdAdd(args) {
      const deadline = Date.now() + pool.waitMs;
      for (;;) {
        try {
          return await handlers.cmdAdd(args);
        } catch (err) {
          if (
            !(err instanceof CniError) ||
            err.code !== PLUGIN_CODES.poolExhausted || pool.pool.atLimit
          ) throw err;
          throwIfCannotGrow(err, pool.pool);
          const left = deadline - Date.now();
          const grown = left > 0 ? idle(pool.pool.waitForGrowth(left)) : false;
          pool.pool.kick();
          if (!await grown) {
            if (pool.pool.atLimit) throw err;
            throwIfCannotGrow(err, pool.pool);
            throw new CniError(
              CODES.tryAgainLater,
              `No free address: the warm pool is growing the NIC, not done within ${
                pool.waitMs / 1000
              } s`,
              { cause: err },
            );
          }
        }
      }
    },
  };
}
