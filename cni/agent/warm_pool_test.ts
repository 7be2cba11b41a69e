/**
 * The warm pool against the ARM emulator over real HTTP(S) on loopback:
 * the SDK code path of `@vnet/arm`, managed identity from the emulator's
 * IMDS, the IPAM state on disk.
 */
import assert from "node:assert/strict";
import { useEmulatorIdentity } from "../../tests/_support/identity.ts";
import parsePrometheus from "parse-prometheus-text-format";
import { type ArmNic, openNic, type OpenNicOptions } from "@vnet/arm";
import {
  type ArmFront,
  isNicGet,
  isOperationPoll,
  isPut,
  startArmFront,
} from "../../azure/arm/_arm_front.ts";
import { type CmdArgs, CniError, type PluginHandlers } from "@vnet/cni";
import { IpamEngine, parseIpamConfig } from "@vnet/ipam";
import {
  addVm,
  emptyState,
  type Emulator,
  type EmulatorVm,
  generateTls,
  startEmulator,
} from "../../tools/sandbox/emulator/mod.ts";
import { parseAgentConfig, type WarmPoolSettings } from "./config.ts";
import { AgentMetrics } from "./metrics.ts";
import { WarmPool, withScaleUpWait } from "./warm_pool.ts";

const tls = await generateTls({ removeOnUnload: true });

// ManagedIdentityCredential must use the emulator's IMDS token endpoint.
useEmulatorIdentity();

// The Azure SDK's node:https client keeps keep-alive sockets open after the
// calls finish, so the resource and op sanitizers are off for SDK tests.
const SDK_TEST = { sanitizeResources: false, sanitizeOps: false } as const;

const MAC = "00:0d:3a:f9:dc:a6";

interface Rig extends AsyncDisposable {
  emu: Emulator;
  /** The pool's way to ARM: records requests, fails those a fault picks. */
  front: ArmFront;
  vm: EmulatorVm;
  dir: string;
  pods: IpamEngine;
  metrics: AgentMetrics;
  pool: WarmPool;
  /** The pods' IPAM config (source: the emulator's wireserver). */
  ipam: ReturnType<typeof parseIpamConfig>;
  reserve(n: number): Promise<string>;
  release(n: number): Promise<void>;
  /** The emulator's ipconfigs: name -> address. */
  nic(): Map<string, string>;
  held(): Promise<string[]>;
}

async function rig(
  options: {
    ipConfigCount: number;
    warm?: Partial<WarmPoolSettings>;
    /** The pool's IPAM engine, given the state dir (default: its own). */
    engine?: (dir: string) => IpamEngine;
    /**
     * Binds the pool's NIC, given the options it would use (default:
     * `openNic` of `@vnet/arm` with them).
     */
    openNic?: (options: OpenNicOptions) => Promise<ArmNic>;
    /** eth0's addresses as the IPAM's refresh sees them (default none). */
    hostIps?: string[];
    /** The node's addresses as the pool sees them (default none). */
    hostAddresses?: string[];
    /** The subnet (default the emulator's 10.240.0.0/16). */
    prefix?: string;
    /** No `nicId`: the pool finds its NIC through IMDS. */
    discover?: boolean;
  },
): Promise<Rig> {
  const state = emptyState();
  const vm = addVm(state, {
    name: "vm0",
    macAddress: MAC,
    ipConfigCount: options.ipConfigCount,
    ...(options.prefix === undefined
      ? {}
      : { subnet: { prefix: options.prefix } }),
  });
  const emu = await startEmulator({ state, tls });
  Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.httpUrl);
  const front = await startArmFront({ target: emu.httpsUrl, tls });
  const dir = await Deno.makeTempDir({ prefix: "warm-pool-" });
  const config = parseAgentConfig({
    warmPool: {
      warmMin: 2,
      warmMax: 6,
      nicId:
        `/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroupName}/providers/Microsoft.Network/networkInterfaces/${vm.nic.name}`,
      intervalSeconds: 3600,
      minUpdateIntervalSeconds: 0,
      maxBackoffSeconds: 4,
    },
    cloud: {
      armEndpoint: front.url,
      imdsUrl: emu.httpUrl,
      caFile: tls.caFile,
    },
  });
  const { nicId, ...rest } = { ...config.warmPool, ...options.warm };
  const settings =
    (options.discover === true ? rest : { ...rest, nicId }) as WarmPoolSettings;
  const ipam = parseIpamConfig({
    cniVersion: "1.1.0",
    name: "azure",
    type: "azure-vnet",
    ipam: {
      type: "azure-vnet-ipam",
      queryUrl:
        `${emu.httpUrl}/machine/plugins?comp=nmagent&type=getinterfaceinfov1`,
      // No refresh during the test: the IPAM learns only through the pool.
      queryInterval: "3600",
    },
  });
  const pods = new IpamEngine({
    stateDir: dir,
    hostMacs: () => [{
      name: "eth0",
      mac: "000d3af9dca6",
      addresses: options.hostIps ?? [],
    }],
  });
  const metrics = new AgentMetrics({
    ipamStatePath: `${dir}/azure-vnet-ipam.json`,
  });
  const wrap = options.openNic;
  const pool = new WarmPool({
    settings,
    cloud: config.cloud,
    stateDir: dir,
    metrics,
    pollIntervalMs: 10,
    hostAddresses: () => options.hostAddresses ?? [],
    ...(options.engine === undefined ? {} : { engine: options.engine(dir) }),
    ...(wrap === undefined ? {} : {
      openNic: () =>
        wrap({
          nicId: settings.nicId,
          armEndpoint: config.cloud.armEndpoint,
          caFile: config.cloud.caFile,
          maxRetries: 0,
          pollIntervalMs: 10,
        }),
    }),
  });
  const key = (n: number) => ({ containerId: `pod${n}`, ifName: "eth0" });
  return {
    emu,
    front,
    vm,
    dir,
    pods,
    metrics,
    pool,
    ipam,
    async reserve(n) {
      return (await pods.reserve(key(n), { config: ipam, network: "azure" }))
        .ip;
    },
    async release(n) {
      await pods.release(key(n), { network: "azure" });
    },
    nic() {
      const v = emu.state.vms[0];
      return new Map(
        (v?.nic.ipConfigurations ?? []).map((
          c,
        ) => [c.name, c.privateIPAddress ?? ""]),
      );
    },
    async held() {
      const s = JSON.parse(
        await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
      ) as {
        pools: Record<
          string,
          { addresses: Record<string, { containerId?: string }> }
        >;
      };
      return Object.values(s.pools).flatMap((p) =>
        Object.entries(p.addresses).filter(([, r]) => r.containerId).map((
          [ip],
        ) => ip)
      );
    },
    async [Symbol.asyncDispose]() {
      await pool.close();
      await front[Symbol.asyncDispose]();
      await emu[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Reserves pod `n`, running passes while the pool is exhausted. */
async function reserveGrowing(r: Rig, n: number): Promise<string> {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      return await r.reserve(n);
    } catch (err) {
      if (!(err instanceof CniError) || err.code !== 100) throw err;
      await r.pool.runOnce();
    }
  }
  throw new Error(`pod${n} got no address`);
}

/** Runs passes (the pool's own timer runs too) until `done`, 10 s at most. */
async function converge(r: Rig, done: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!done()) {
    assert.ok(Date.now() < deadline, "the pool converges within 10 s");
    await r.pool.runOnce();
    await new Promise((res) => setTimeout(res, 100));
  }
  // The update that did it has also reached the IPAM.
  await r.pool.runOnce();
}

async function armCounts(m: AgentMetrics): Promise<Map<string, number>> {
  const fams = parsePrometheus(await m.render()) as {
    name: string;
    metrics: { labels?: Record<string, string>; value?: string }[];
  }[];
  const arm = fams.find((f) => f.name === "azure_vnet_arm_requests_total");
  return new Map(
    (arm?.metrics ?? []).map((x) => [
      `${x.labels?.operation}/${x.labels?.result}`,
      Number(x.value),
    ]),
  );
}

Deno.test({
  name:
    "WarmPool grows the NIC from 4 ipconfigs to cover 12 pods and shrinks back above warmMax",
  ...SDK_TEST,
  async fn(t) {
    await using r = await rig({ ipConfigCount: 4 });
    const primary = r.vm.nic.ipConfigurations[0]?.privateIPAddress;
    await t.step(
      "growth: each pass is one NIC update, new addresses usable at once",
      async () => {
        const ips = [];
        for (let n = 0; n < 12; n++) ips.push(await reserveGrowing(r, n));
        assert.equal(new Set(ips).size, 12);
        const onNic = new Set(r.nic().values());
        assert.ok(
          ips.every((ip) => onNic.has(ip)),
          "every pod's address is on the NIC",
        );
        assert.ok(!ips.includes(primary ?? ""));
        // Settle: the pool refills to the band's middle.
        const pass = await r.pool.runOnce();
        assert.ok(pass.outcome === "updated" || pass.outcome === "idle");
        await r.pool.runOnce();
        const free = r.nic().size - 1 - 12;
        assert.ok(free >= 2 && free <= 6, `free ${free} within 2..6`);
        const counts = await armCounts(r.metrics);
        assert.ok((counts.get("update/ok") ?? 0) >= 2);
        assert.ok((counts.get("get/ok") ?? 0) >= 2);
      },
    );
    await t.step(
      "shrink: above warmMax it removes free ipconfigs only, never in use or primary",
      async () => {
        for (let n = 0; n < 10; n++) await r.release(n);
        const held = await r.held();
        assert.equal(held.length, 2);
        const pass = await r.pool.runOnce();
        assert.equal(pass.outcome, "updated");
        assert.ok(pass.removed.length > 0);
        const nic = r.nic();
        assert.equal(nic.get("ipconfig1"), primary);
        for (const ip of held) {
          assert.ok([...nic.values()].includes(ip), `${ip} in use stays`);
        }
        assert.equal(
          nic.size - 1 - held.length,
          4,
          "back to the band's middle",
        );
        // The IPAM dropped the removed addresses at once.
        const s = JSON.parse(
          await Deno.readTextFile(`${r.dir}/azure-vnet-ipam.json`),
        ) as { pools: Record<string, { addresses: Record<string, unknown> }> };
        const inIpam = Object.values(s.pools).flatMap((p) =>
          Object.keys(p.addresses)
        ).sort();
        const onNic = [...nic.values()].filter((ip) => ip !== primary).sort();
        assert.deepEqual(inIpam, onNic);
        assert.equal((await r.pool.runOnce()).outcome, "idle");
      },
    );
  },
});

Deno.test({
  name: "WarmPool backs off on 429 (Retry-After) and 500 and still converges",
  ...SDK_TEST,
  async fn(t) {
    await using r = await rig({ ipConfigCount: 4 });
    for (let n = 0; n < 3; n++) await r.reserve(n);
    await t.step(
      "429 with Retry-After: 2 waits at least that long",
      async () => {
        r.emu.setFault("arm", {
          errorCount: 1,
          errorStatus: 429,
          retryAfterSeconds: 2,
        });
        const t0 = Date.now();
        assert.equal((await r.pool.runOnce()).outcome, "failed");
        assert.equal((await r.pool.runOnce()).outcome, "backoff");
        await converge(r, () => r.nic().size === 8);
        assert.ok(Date.now() - t0 >= 2000, "Retry-After honoured");
      },
    );
    await t.step(
      "500s: exponential backoff, then the update lands",
      async () => {
        for (let n = 3; n < 7; n++) await r.reserve(n);
        r.emu.setFault("arm", { errorCount: 2, errorStatus: 500 });
        await converge(r, () => r.nic().size - 1 - 7 === 4);
        // Pods reserve the new addresses without any refresh.
        for (let n = 7; n < 11; n++) await r.reserve(n);
      },
    );
    const counts = await armCounts(r.metrics);
    assert.equal(counts.get("get/throttled"), 1);
    assert.equal(
      (counts.get("get/server_error") ?? 0) +
        (counts.get("update/server_error") ?? 0),
      2,
    );
    assert.equal(counts.get("update/ok"), 2);
  },
});

function ipamHandlers(r: Rig): PluginHandlers {
  return {
    async cmdAdd(args: CmdArgs) {
      const ip = await r.reserve(Number(args.containerId.slice(3)));
      return { cniVersion: "1.1.0", ips: [{ address: `${ip}/16` }] };
    },
    async cmdDel(args: CmdArgs) {
      await r.release(Number(args.containerId.slice(3)));
    },
  };
}

function addArgs(n: number): CmdArgs {
  return { containerId: `pod${n}` } as CmdArgs;
}

Deno.test({
  name:
    "withScaleUpWait() waits for the growth, returns 11 during an outage and 100 at 256 ipconfigs",
  ...SDK_TEST,
  async fn(t) {
    await t.step(
      "an exhausted ADD waits for the scale-up and succeeds",
      async () => {
        await using r = await rig({ ipConfigCount: 2 });
        await r.reserve(0);
        r.pool.start();
        let idled = 0;
        const h = withScaleUpWait(ipamHandlers(r), {
          pool: r.pool,
          waitMs: 5000,
          // The agent's slot is free while the ADD waits.
          idle: (wait) => (idled++, wait),
        });
        const res = await h.cmdAdd(addArgs(1)) as {
          ips: { address: string }[];
        };
        assert.match(res.ips[0]?.address ?? "", /^10\.240\./);
        assert.equal(idled, 1);
      },
    );
    await t.step(
      "an ARM outage: the ADD gets 11 after scaleUpWaitSeconds",
      async () => {
        await using r = await rig({ ipConfigCount: 2 });
        await r.reserve(0);
        r.emu.setFault("arm", { errorCount: 1000, errorStatus: 503 });
        const h = withScaleUpWait(ipamHandlers(r), {
          pool: r.pool,
          waitMs: 400,
        });
        const t0 = Date.now();
        await assert.rejects(h.cmdAdd(addArgs(1)), {
          name: "CniError",
          code: 11,
          message: /warm pool is growing/,
        });
        assert.ok(Date.now() - t0 >= 400);
      },
    );
    await t.step(
      "never more than 256 ipconfigs; at the limit ADD keeps 100",
      async () => {
        await using r = await rig({ ipConfigCount: 254 });
        for (let n = 0; n < 253; n++) await r.reserve(n);
        const pass = await r.pool.runOnce();
        assert.deepEqual(pass.added, ["ipconfig255", "ipconfig256"]);
        assert.equal(r.nic().size, 256);
        await r.reserve(253);
        await r.reserve(254);
        assert.equal((await r.pool.runOnce()).outcome, "idle");
        assert.ok(r.pool.atLimit);
        assert.equal(r.nic().size, 256);
        const h = withScaleUpWait(ipamHandlers(r), {
          pool: r.pool,
          waitMs: 5000,
        });
        const t0 = Date.now();
        await assert.rejects(h.cmdAdd(addArgs(255)), {
          name: "CniError",
          code: 100,
        });
        assert.ok(Date.now() - t0 < 1000, "no wait at the limit");
      },
    );
  },
});

/** Binds the NIC as the pool would; `race` runs before its first update. */
async function openNicRacing(
  options: OpenNicOptions,
  race: () => Promise<void>,
): Promise<ArmNic> {
  const nic = await openNic(options);
  let armed = true;
  return {
    ref: nic.ref,
    get: (o) => nic.get(o),
    async update(current, change) {
      if (armed) {
        armed = false;
        await race();
      }
      return await nic.update(current, change);
    },
  };
}

/** An engine that lets a pod take `ip` right before the pool withdraws. */
class RacingEngine extends IpamEngine {
  #race: (() => Promise<void>) | undefined;
  arm(race: () => Promise<void>): void {
    this.#race = race;
  }
  override async syncNic(
    nic: Parameters<IpamEngine["syncNic"]>[0],
  ): ReturnType<IpamEngine["syncNic"]> {
    const race = this.#race;
    this.#race = undefined;
    await race?.();
    return await super.syncNic(nic);
  }
}

Deno.test({
  name:
    "WarmPool never removes an address a pod took between the plan and the withdrawal",
  ...SDK_TEST,
  async fn() {
    let engine: RacingEngine | undefined;
    await using r = await rig({
      ipConfigCount: 12,
      engine: (dir) => (engine = new RacingEngine({ stateDir: dir })),
    });
    await r.reserve(0);
    // 10 free: the plan removes the highest free ones, down to 4 free.
    const highest = [...r.nic().values()].at(-1) ?? "";
    engine?.arm(async () => {
      await r.pods.reserve({ containerId: "racer", ifName: "eth0" }, {
        config: r.ipam,
        network: "azure",
        requestedIp: highest,
      });
    });
    const pass = await r.pool.runOnce();
    assert.equal(pass.outcome, "updated");
    assert.ok([...r.nic().values()].includes(highest), `${highest} stays`);
    assert.ok((await r.held()).includes(highest));
    assert.equal(pass.removed.length, 5, "the other 5 planned removals ran");
  },
});

Deno.test({
  name:
    "WarmPool plans again at once when another writer changed the NIC between its GET and its PUT (412), and keeps that writer's ipconfig",
  ...SDK_TEST,
  async fn() {
    await using r = await rig({
      ipConfigCount: 4,
      async openNic(options) {
        const other = await openNic(options);
        // The NIC tool adds an ipconfig after the pool's GET.
        return await openNicRacing(options, async () => {
          await other.update(await other.get(), {
            add: ["ipconfig9"],
            remove: [],
          });
        });
      },
    });
    for (let n = 0; n < 3; n++) await r.reserve(n);
    const first = await r.pool.runOnce();
    assert.equal(first.outcome, "conflict");
    const theirs = r.nic().get("ipconfig9");
    assert.match(theirs ?? "", /^10\.240\./, "the other writer's ipconfig");
    const second = await r.pool.runOnce();
    assert.equal(second.outcome, "updated", "no backoff after a conflict");
    const nic = r.nic();
    assert.equal(nic.get("ipconfig9"), theirs, "still there after the update");
    assert.equal(nic.size - 1 - 3, 4, "back to the band's middle");
    const counts = await armCounts(r.metrics);
    assert.equal(counts.get("update/conflict"), 1);
    assert.equal(counts.get("update/ok"), 1);
  },
});

/** The pool's addresses handed out: reserves pods `from`.. until 100. */
async function reserveAll(r: Rig, from: number): Promise<string[]> {
  const got: string[] = [];
  for (let n = from;; n++) {
    try {
      got.push(await r.reserve(n));
    } catch (err) {
      if (err instanceof CniError && err.code === 100) return got;
      throw err;
    }
  }
}

/** The IPAM's free addresses (not held), sorted. */
async function freeInIpam(r: Rig): Promise<string[]> {
  const s = JSON.parse(
    await Deno.readTextFile(`${r.dir}/azure-vnet-ipam.json`),
  ) as {
    pools: Record<
      string,
      { addresses: Record<string, { containerId?: string }> }
    >;
  };
  return Object.values(s.pools).flatMap((p) =>
    Object.entries(p.addresses).filter(([, a]) => !a.containerId).map((
      [ip],
    ) => ip)
  ).sort();
}

/**
 * A shrink that ARM applies while its operation stays in progress for two
 * polls: 8 ipconfigs, pod0 holds .5, band 1..3, so .8 to .11 go.
 */
async function shrinkRig(): Promise<Rig> {
  const r = await rig({ ipConfigCount: 8, warm: { warmMin: 1, warmMax: 3 } });
  r.emu.setArm({ mode: "async", inProgressPolls: 2 });
  assert.equal(await r.reserve(0), "10.240.0.5");
  return r;
}

Deno.test({
  name:
    "WarmPool's update survives three failed polls after its PUT landed, and pods get only addresses on the NIC",
  ...SDK_TEST,
  async fn() {
    await using r = await shrinkRig();
    r.front.fail({ match: isOperationPoll, count: 3, status: 503 });
    const pass = await r.pool.runOnce();
    assert.equal(pass.outcome, "updated", "the polls retried");
    assert.deepEqual(pass.removed, [
      "ipconfig5",
      "ipconfig6",
      "ipconfig7",
      "ipconfig8",
    ]);
    assert.equal(
      r.front.requests.filter((q) => isOperationPoll(q) && q.status === 503)
        .length,
      3,
    );
    // Each failed poll is a request the metric counts.
    const counts = await armCounts(r.metrics);
    assert.equal(counts.get("update/server_error"), 3);
    assert.equal(counts.get("update/ok"), 1);
    const onNic = new Set(r.nic().values());
    const got = await reserveAll(r, 1);
    assert.deepEqual(got, ["10.240.0.6", "10.240.0.7"]);
    for (const ip of got) assert.ok(onNic.has(ip), `${ip} is on the NIC`);
  },
});

Deno.test({
  name:
    "WarmPool gives back after a failed update only what a GET shows still on the NIC",
  ...SDK_TEST,
  async fn(t) {
    await t.step(
      "the update landed but every poll failed: the withdrawn addresses stay out",
      async () => {
        await using r = await shrinkRig();
        r.front.fail({ match: isOperationPoll, count: 100, status: 503 });
        assert.equal((await r.pool.runOnce()).outcome, "failed");
        const onNic = [...r.nic().values()];
        assert.equal(onNic.length, 4, "ARM applied the removal");
        assert.deepEqual(await freeInIpam(r), ["10.240.0.6", "10.240.0.7"]);
        const got = await reserveAll(r, 1);
        for (const ip of got) {
          assert.ok(onNic.includes(ip), `${ip} is on the NIC`);
        }
      },
    );
    await t.step(
      "the PUT was refused (500): the GET shows them, they come back at once",
      async () => {
        await using r = await shrinkRig();
        r.front.fail({ match: isPut, count: 1, status: 500 });
        assert.equal((await r.pool.runOnce()).outcome, "failed");
        assert.equal(r.nic().size, 8, "nothing applied");
        assert.deepEqual(await freeInIpam(r), [
          "10.240.0.10",
          "10.240.0.11",
          "10.240.0.6",
          "10.240.0.7",
          "10.240.0.8",
          "10.240.0.9",
        ]);
      },
    );
    await t.step(
      "the PUT was refused and the GET fails too: nothing comes back until a pass reads the NIC",
      async () => {
        await using r = await shrinkRig();
        r.front.fail({ match: isPut, count: 1, status: 500 });
        // The confirming GET after the PUT, and its 3 retries.
        r.front.fail({
          match: (q) => isNicGet(q) && r.front.requests.some(isPut),
          count: 4,
          status: 503,
        });
        assert.equal((await r.pool.runOnce()).outcome, "failed");
        assert.equal(r.nic().size, 8, "nothing applied");
        assert.deepEqual(await freeInIpam(r), ["10.240.0.6", "10.240.0.7"]);
        assert.deepEqual(await reserveAll(r, 1), ["10.240.0.6", "10.240.0.7"]);
        // After the backoff a pass reads the NIC: .8 to .11 are free on it;
        // it removes two and gives the other two back.
        await converge(r, () => r.nic().size === 1 + 3 + 2);
        assert.deepEqual(await freeInIpam(r), ["10.240.0.8", "10.240.0.9"]);
      },
    );
  },
});

Deno.test({
  name:
    "WarmPool keeps an address it removes out of the IPAM even when no pool had it yet, so a refresh during the update cannot hand it out",
  ...SDK_TEST,
  async fn() {
    let racer: string | undefined;
    await using r = await rig({
      ipConfigCount: 4,
      // Between the withdrawal and the end of the PUT, an ADD whose refresh
      // (every ADD queries the wireserver) still lists the addresses about
      // to go.
      openNic: (options) =>
        openNicRacing(options, async () => {
          racer = await r.pods.reserve(
            { containerId: "racer", ifName: "eth0" },
            {
              config: { ...r.ipam, queryIntervalMs: 0 },
              network: "azure",
              requestedIp: "10.240.0.15",
            },
          ).then((x) => x.ip, () => undefined);
        }),
    });
    assert.equal(await r.reserve(0), "10.240.0.5");
    // Another writer (the NIC tool) adds 8 ipconfigs; the IPAM, which last
    // refreshed before, knows none of .8 to .15.
    r.emu.update((s) => {
      const nic = s.vms[0]?.nic;
      for (let k = 5; k <= 12; k++) {
        nic?.ipConfigurations.push({
          name: `ipconfig${k}`,
          privateIPAddress: `10.240.0.${k + 3}`,
          primary: false,
          allocation: "Dynamic",
        });
      }
    });
    const pass = await r.pool.runOnce();
    assert.equal(pass.outcome, "updated");
    assert.equal(pass.removed.length, 6, "10 free, down to 4");
    const onNic = new Set(r.nic().values());
    assert.ok(!onNic.has("10.240.0.15"), ".15 was removed");
    for (const ip of await r.held()) {
      assert.ok(onNic.has(ip), `held ${ip} is on the NIC`);
    }
    assert.equal(racer, undefined, "the racing ADD did not get .15");
  },
});

Deno.test({
  name:
    "WarmPool neither counts as free nor removes the node's own secondary addresses",
  ...SDK_TEST,
  async fn() {
    await using r = await rig({
      ipConfigCount: 12,
      // .11 is only among the pool's primary addresses (the node held it
      // at the IPAM's refresh); .15 only on the node's interfaces (it got
      // it since). Each alone keeps its address.
      hostIps: ["10.240.0.4", "10.240.0.11"],
      hostAddresses: ["10.240.0.4", "10.240.0.15"],
    });
    assert.equal(await r.reserve(0), "10.240.0.5");
    // 11 secondaries, 1 held, 2 the host's: 8 free, down to 4.
    const pass = await r.pool.runOnce();
    assert.equal(pass.outcome, "updated");
    assert.equal(pass.free, 8);
    assert.equal(pass.removed.length, 4);
    const onNic = new Set(r.nic().values());
    assert.ok(onNic.has("10.240.0.11"), "the host's .11 stays on the NIC");
    assert.ok(onNic.has("10.240.0.15"), "the host's .15 stays on the NIC");
    // Neither is handed to a pod.
    const got = await reserveAll(r, 1);
    assert.equal(got.length, 4);
    assert.ok(!got.includes("10.240.0.11") && !got.includes("10.240.0.15"));
  },
});

Deno.test({
  name:
    "WarmPool counts a failed operation as operation_failed and a failed discovery through IMDS as imds_error",
  ...SDK_TEST,
  async fn(t) {
    await t.step("SubnetIsFull", async () => {
      // A /29 has 3 usable addresses: the growth finds none.
      await using r = await rig({
        ipConfigCount: 3,
        prefix: "10.240.0.0/29",
      });
      await r.reserve(0);
      await r.reserve(1);
      assert.equal((await r.pool.runOnce()).outcome, "failed");
      const counts = await armCounts(r.metrics);
      assert.equal(counts.get("update/operation_failed"), 1);
      assert.equal(counts.get("update/network_error"), undefined);
    });
    await t.step(
      "IMDS answering 500 while the pool finds its NIC",
      async () => {
        await using r = await rig({ ipConfigCount: 3, discover: true });
        r.emu.setFault("imds", { errorCount: 100, errorStatus: 500 });
        assert.equal((await r.pool.runOnce()).outcome, "failed");
        const counts = await armCounts(r.metrics);
        assert.equal(counts.get("discover/imds_error"), 1);
        assert.equal(counts.get("discover/network_error"), undefined);
        // Without the fault, after the backoff, it finds the NIC.
        r.emu.setFault("imds", undefined);
        const deadline = Date.now() + 10_000;
        let pass = await r.pool.runOnce();
        while (pass.outcome === "backoff" && Date.now() < deadline) {
          await new Promise((res) => setTimeout(res, 100));
          pass = await r.pool.runOnce();
        }
        assert.equal(pass.outcome, "idle");
        assert.ok(((await armCounts(r.metrics)).get("get/ok") ?? 0) >= 1);
      },
    );
  },
});

Deno.test({
  name:
    "withScaleUpWait() fails an exhausted ADD at once with 100 naming the ARM failure while ARM refuses the growth for good",
  ...SDK_TEST,
  async fn(t) {
    const cases = [
      {
        name: "403 on the PUT",
        rig: { ipConfigCount: 2 },
        pods: 1,
        arm: (r: Rig) =>
          r.front.fail({ match: isPut, count: 100, status: 403 }),
        details:
          /the warm pool cannot grow the NIC: ARM update failed \(client_error 403 FrontFault\)/,
      },
      {
        name: "SubnetIsFull",
        rig: { ipConfigCount: 3, prefix: "10.240.0.0/29" },
        pods: 2,
        arm: () => {},
        details:
          /the warm pool cannot grow the NIC: ARM update failed \(operation_failed SubnetIsFull\)/,
      },
    ];
    for (const c of cases) {
      await t.step(c.name, async () => {
        await using r = await rig(c.rig);
        for (let n = 0; n < c.pods; n++) await r.reserve(n);
        c.arm(r);
        const h = withScaleUpWait(ipamHandlers(r), {
          pool: r.pool,
          waitMs: 5000,
        });
        for (const n of [100, 101]) {
          const t0 = Date.now();
          await assert.rejects(h.cmdAdd(addArgs(n)), {
            name: "CniError",
            code: 100,
            message: /^No free address in /,
            details: c.details,
          });
          assert.ok(Date.now() - t0 < 2500, `ADD ${n} did not wait`);
        }
      });
    }
    await t.step("a later success clears it", async () => {
      await using r = await rig({ ipConfigCount: 2 });
      await r.reserve(0);
      r.front.fail({ match: isPut, count: 1, status: 403 });
      const h = withScaleUpWait(ipamHandlers(r), {
        pool: r.pool,
        waitMs: 5000,
      });
      await assert.rejects(h.cmdAdd(addArgs(1)), {
        name: "CniError",
        code: 100,
        details: /cannot grow the NIC/,
      });
      assert.notEqual(r.pool.hardFailure, undefined);
      // After the backoff the PUT lands.
      await converge(r, () => r.nic().size > 2);
      assert.equal(r.pool.hardFailure, undefined);
      const res = await h.cmdAdd(addArgs(1)) as { ips: { address: string }[] };
      assert.match(res.ips[0]?.address ?? "", /^10\.240\./);
    });
  },
});
