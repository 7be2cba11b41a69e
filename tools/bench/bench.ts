/**
 * `deno task bench`: four systems in one run, in namespaces the benchmark
 * creates: azure-vnet with its node agent (#14; the thin `dist/azure-vnet`
 * forwards to `dist/azure-vnet-agent`), azure-vnet without an agent (the
 * in-process fallback), azure-vnet in transparent mode (#15) with an agent
 * of its own, and Debian's Go `bridge` + `host-local`.
 *
 * The process re-executes itself under `unshare --net --mount` with a
 * private tmpfs on `/run/netns`. That private network namespace is the
 * "node" of the testbed's {@link AzureNode} (`tools/testbed/`, shared with
 * the privileged tests): its `eth0` is a veth to an "azure host" namespace
 * (the gateway), and every pod is a namespace of its own. The fallback's
 * network gets a NIC of its own (`eth1`, another veth to the azure host),
 * state dir and bridge, and the transparent network likewise (`eth2`, a
 * state dir and so an agent of its own; a NIC runs one mode), so the four
 * run side by side, interleaved. The agents run in the node too. Plugins
 * run in the node directly, so no
 * `ip netns exec` is timed. Nothing outside is touched, and everything
 * disappears with the process.
 *
 * Measured: ADD and DEL latency (p50/p95, interleaved runs), bursts of N
 * concurrent ADDs (wall time, successes, duplicate IPs, peak RSS per plugin
 * process by `/usr/bin/time -f %M`, and the agent's RSS after each burst),
 * ADD p50 with few and with many pods present, and start-up. Last, the
 * warm pool (#16, `warm_chart.ts`): a one-node sandbox with the ARM
 * emulator, a burst of ADDs and DELs, the agent's pool charted over time to
 * the output path with `-warm.svg`. The report
 * goes to stdout and to `BENCHMARKS.md` (`--out`), the latency chart to
 * the same path with `.svg`.
 *
 * @module
 */
import { parseCli } from "../_cli.ts";
import {
  AZURE_VNET_AGENT_DIST,
  AZURE_VNET_DIST,
  AzureNode,
  type CniRun,
  hostAddress,
  ip,
  mapLimit,
  type Netns,
  readServedEntries,
  resultIp,
  run,
  spawnAgent,
  spawnCni,
} from "../testbed/mod.ts";
import {
  type Burst,
  burstLines,
  burstRow,
  fmt,
  type Latency,
  latencyLines,
  latencyRow,
  latencySeries,
  type Of,
  ratioTargetRow,
  targetRow,
} from "./report.ts";
import { duplicates, quantile, ratioLine } from "./stats.ts";
import type { ProbeTimes } from "./startup_probe.ts";
import { latencySvg, poolSvg } from "./svg.ts";
import { type WarmChart, warmChart } from "./warm_chart.ts";

/** The warm pool phase's pool bounds and the NIC's ipconfigs at its start. */
const WARM = { min: 2, max: 6 };
const WARM_IPCOUNT = 3;
/** Its sampling interval of `GET /v1/pool`, ms. */
const WARM_INTERVAL_MS = 100;

const USAGE = `usage: deno task bench [--quick] [--runs N] [--bursts 30,110,250]
       [--transparent-bursts LIST] [--load 10,250] [--load-runs N]
       [--startup-rounds N] [--warm-pods N] [--warm-chart-only] [--out FILE]
  Runs as root. Compares dist/azure-vnet with its agent, without (the
  fallback) and in transparent mode (with an agent of its own) against
  /usr/lib/cni bridge+host-local. --transparent-bursts picks the burst sizes
  transparent mode runs too, a subset of --bursts (default all of them; an
  empty list none). Defaults come from VNET_BENCH_RUNS, VNET_BENCH_BURSTS,
  VNET_BENCH_TRANSPARENT_BURSTS, VNET_BENCH_LOAD, VNET_BENCH_LOAD_RUNS,
  VNET_BENCH_STARTUP_ROUNDS and VNET_BENCH_WARM_PODS when set; --quick is a
  small run (5 runs, a burst of 10, 5 and 20 pods present, 5 load runs, 3
  start-up rounds, a warm pool burst of 8).
  The warm pool phase (#16) charts the agent's pool (warm ${WARM.min}..${WARM.max}, NIC
  starting with ${WARM_IPCOUNT} ipconfigs) during a burst of --warm-pods ADDs and
  their DELs, in a sandbox with the ARM emulator (tools/sandbox), to FILE
  with -warm.svg; --warm-pods 0 skips it; --warm-chart-only runs only it
  (BENCHMARKS.md is left alone).`;

const ROOT = new URL("../../", import.meta.url).pathname;
const SELF = new URL("./bench.ts", import.meta.url).pathname;
const PROBE = new URL("./startup_probe.ts", import.meta.url).pathname;
const OURS = AZURE_VNET_DIST;
const AGENT = AZURE_VNET_AGENT_DIST;
const GO_BRIDGE = "/usr/lib/cni/bridge";
const CNI_PATH = "/usr/lib/cni";
const TIME = "/usr/bin/time";
const RSS_MARK = "cnibench-rss=";
/** Untimed ADD+DEL pairs per plugin before the latency runs (pods 0..2). */
const WARMUP = 3;
/**
 * Subnets: agent's (eth0), fallback's (eth1), transparent mode's (eth2),
 * the reference's (bridge).
 */
const SUBNET = "10.200.0.0/16";
const FALLBACK_SUBNET = "10.202.0.0/16";
const TRANSPARENT_SUBNET = "10.203.0.0/16";
const REF_SUBNET = "10.201.0.0/16";
/** The runtime's environment of every plugin run. */
const BASE_ENV = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", CNI_PATH };

const enc = new TextEncoder();

function out(text: string): void {
  Deno.stdout.writeSync(enc.encode(text));
}

/** One plugin invocation (stderr without the RSS line). */
interface Invocation extends CniRun {
  rssKb: number | undefined;
}

/** The plugin under test: how to run it, its network config and pods. */
interface Subject {
  label: string;
  binary: string;
  conf: Record<string, unknown>;
  /** `CNI_CONTAINERID` is this plus the pod's key. */
  idPrefix: string;
  /** The environment of one attachment. */
  env: (id: string, pod: Netns | undefined) => Record<string, string>;
  node: AzureNode;
  pods: Netns[];
  /** Its own state (and log) dir; the node's for the agent subject. */
  stateDir: string;
}

async function invoke(
  s: Subject,
  command: string,
  opts: {
    pod: Netns | undefined;
    key: string;
    prevResult?: unknown;
    rss?: boolean;
  },
): Promise<Invocation> {
  const conf = opts.prevResult === undefined
    ? s.conf
    : { ...s.conf, prevResult: opts.prevResult };
  const r = await spawnCni({
    argv: opts.rss ? [TIME, "-f", `${RSS_MARK}%M`, s.binary] : [s.binary],
    command,
    conf,
    env: s.env(`${s.idPrefix}${opts.key}`, opts.pod),
    baseEnv: BASE_ENV,
    lenientJson: true,
  }).done;
  let stderr = r.stderr;
  let rssKb: number | undefined;
  const at = stderr.lastIndexOf(RSS_MARK);
  if (at >= 0) {
    rssKb = Number(stderr.slice(at + RSS_MARK.length).trim());
    stderr = stderr.slice(0, at);
  }
  return { ...r, stderr, rssKb };
}

/** Pod `i` of a subject, created on first use (released with the node). */
async function podsUpTo(s: Subject, count: number): Promise<void> {
  const missing = count - s.pods.length;
  if (missing > 0) s.pods.push(...await s.node.pods(missing));
}

/**
 * This process's own mounts (it has a mount namespace of its own): a
 * private `/run/netns`, and `/tmp` on a tmpfs. The nodes' state and log
 * dirs are made in `/tmp`: on a node the state is in `/var/run`, a tmpfs,
 * where the fsync of every state write costs nothing.
 */
async function privateMounts(): Promise<void> {
  await Deno.mkdir("/run/netns", { recursive: true });
  const mounts = [["/run/netns", "0755"], ["/tmp", "1777"]] as const;
  for (const [dir, mode] of mounts) {
    await run("mount", ["-t", "tmpfs", "-o", `mode=${mode}`, "cnibench", dir]);
  }
}

/**
 * Another NIC of the node, so a network has a master of its own:
 * `eth<index>` in the node (`.4` of `subnet`), a veth to `ah<index>`
 * (`.1`) in the azure host.
 */
async function extraNic(
  n: AzureNode,
  nic: { index: number; subnet: string },
): Promise<void> {
  const len = nic.subnet.split("/")[1] ?? "";
  const [eth, ah] = [`eth${nic.index}`, `ah${nic.index}`];
  await ip(
    ["link", "add", eth, "type", "veth", "peer", "name", ah]
      .concat(["netns", n.azure.name]),
    n.node.name,
  );
  await ip(
    ["addr", "add", `${hostAddress(nic.subnet, 1)}/${len}`, "dev", ah],
    n.azure.name,
  );
  await ip(["link", "set", ah, "up"], n.azure.name);
  await ip(
    ["addr", "add", `${hostAddress(nic.subnet, 4)}/${len}`, "dev", eth],
    n.node.name,
  );
  await ip(["link", "set", eth, "up"], n.node.name);
}

/** The subjects of ours with a NIC (and state dir) of their own. */
const OWN_NICS = {
  fallback: { index: 1, subnet: FALLBACK_SUBNET },
  transparent: { index: 2, subnet: TRANSPARENT_SUBNET },
} as const;

/**
 * A subject of ours on a NIC ({@link OWN_NICS}, {@link extraNic}), state
 * dir and network of its own: `conf` with a static pool of `poolSize`
 * addresses of the NIC's subnet as its `ipam`.
 */
async function ownNetwork(
  n: AzureNode,
  label: keyof typeof OWN_NICS,
  own: { poolSize: number; conf: Record<string, unknown> },
): Promise<Subject> {
  const nic = OWN_NICS[label];
  await extraNic(n, nic);
  const dir = await Deno.makeTempDir({ dir: n.dir, prefix: `${label}-` });
  return {
    label,
    binary: OURS,
    idPrefix: `cnibench-${label[0]}`,
    env: (id, pod) => ({
      ...n.env(id, pod),
      AZURE_VNET_STATE_DIR: dir,
      AZURE_VNET_LOG_DIR: dir,
    }),
    node: n,
    pods: [],
    stateDir: dir,
    conf: {
      ...own.conf,
      ipam: {
        type: "azure-vnet-ipam",
        environment: "static",
        subnet: nic.subnet,
        primaryIp: hostAddress(nic.subnet, 4),
        addresses: Array.from(
          { length: own.poolSize },
          (_, i) => hostAddress(nic.subnet, 256 + i),
        ),
      },
    },
  };
}

async function subjects(
  n: AzureNode,
  poolSize: number,
): Promise<
  { agent: Subject; fallback: Subject; transparent: Subject; ref: Subject }
> {
  // On the node's own NIC and state dir; `CNI_CONTAINERID`s start with
  // `cnibench-` and the label's first letter.
  const onNode = (label: string, run: Pick<Subject, "binary" | "conf">) => ({
    label,
    ...run,
    idPrefix: `cnibench-${label[0]}`,
    env: (id: string, pod: Netns | undefined) => n.env(id, pod),
    node: n,
    pods: [],
    stateDir: n.dir,
  });
  const agent = onNode("agent", { binary: OURS, conf: n.conf(poolSize) });
  const fallback = await ownNetwork(n, "fallback", {
    poolSize,
    conf: { ...n.conf(0), name: "azfallback", bridge: "azure1" },
  });
  // No bridge in transparent mode: the key is left out, not just unused.
  const { bridge: _bridge, ...routed } = n.conf(0);
  const transparent = await ownNetwork(n, "transparent", {
    poolSize,
    conf: { ...routed, name: "aztransparent", mode: "transparent" },
  });
  await Deno.mkdir(`${n.dir}/host-local`, { recursive: true });
  const ref = onNode("bridge+host-local", {
    binary: GO_BRIDGE,
    conf: {
      cniVersion: "1.0.0",
      name: "gobench",
      type: "bridge",
      bridge: "cnibr0",
      isGateway: true,
      ipam: {
        type: "host-local",
        dataDir: `${n.dir}/host-local`,
        ranges: [[{ subnet: REF_SUBNET, gateway: hostAddress(REF_SUBNET, 1) }]],
      },
    },
  });
  return { agent, fallback, transparent, ref };
}

function must(r: Invocation, what: string): Invocation {
  if (r.code !== 0) {
    throw new Error(
      `${what} failed (${r.code}): ${JSON.stringify(r.json)} ${r.stderr}`,
    );
  }
  return r;
}

/** One timed ADD and DEL of `pod` (a fresh netns). */
async function addDel(
  s: Subject,
  pod: { ns: Netns | undefined; key: string },
  lat: Latency,
): Promise<void> {
  const at = { pod: pod.ns, key: pod.key };
  const add = must(await invoke(s, "ADD", at), `${s.label} ADD`);
  lat.add.push(add.ms);
  const del = must(
    await invoke(s, "DEL", { ...at, prevResult: add.json }),
    `${s.label} DEL`,
  );
  lat.del.push(del.ms);
}

async function latency(s: Subject, i: number, lat: Latency): Promise<void> {
  await addDel(s, { ns: s.pods[i], key: String(i) }, lat);
}

/** How long the node settles after pods were attached or removed. */
const SETTLE_MS = 3000;

/** ADD p50 per pods-present level, end to end and in the agent. */
interface Loaded {
  /** The plugin call's wall time, per level. */
  p50: number[];
  /** The agent's own time (its log), per level; empty without an agent. */
  agentP50: number[];
}

/**
 * The levels in the order they are measured: up, then back down (10, 250,
 * 10), so that what drifts during the phase (the kernel still freeing what
 * an earlier phase removed) weighs on the low level as on the high one.
 */
function loadPath(levels: readonly number[]): number[] {
  return [...levels, ...levels.slice(0, -1).reverse()];
}

/**
 * The agent's own time per ADD of `containerIds` (its `served` log lines),
 * from the agent log in `logDir`; empty when there is no agent.
 */
async function agentMs(
  logDir: string,
  containerIds: ReadonlySet<string>,
): Promise<number[]> {
  return (await readServedEntries(logDir)).flatMap((e) =>
    e.plugin === "azure-vnet" && e.command === "ADD" && e.code === 0 &&
      containerIds.has(e.containerId)
      ? [e.ms]
      : []
  );
}

/**
 * ADD p50 with `present` of this subject's pods attached on the node (in
 * namespaces of their own): at each level of {@link loadPath}, the pods
 * attached or removed, {@link SETTLE_MS} of rest, then `runs` timed
 * ADD+DEL pairs on fresh pods; a level's p50 takes the pairs of both its
 * passes. Everything made is removed again.
 */
async function loadedAddP50(
  s: Subject,
  present: readonly number[],
  runs: number,
): Promise<Loaded> {
  const attached: { ns: Netns; json: unknown; key: string }[] = [];
  const samples = new Map<number, { add: number[]; ids: Set<string> }>();
  // Pods beyond `keep` go: their DEL, then their namespace.
  const detach = async (keep: number) => {
    const gone = attached.splice(keep);
    await mapLimit(gone.length, async (i) => {
      const a = gone[i];
      if (a === undefined) return;
      await invoke(s, "DEL", { pod: a.ns, key: a.key, prevResult: a.json });
      await a.ns[Symbol.asyncDispose]();
    }, { limit: 16 });
  };
  const probes: Netns[] = [];
  try {
    for (const [pass, count] of loadPath(present).entries()) {
      const more = count - attached.length;
      const ns = await s.node.pods(Math.max(0, more) + runs);
      const fresh = ns.slice(0, Math.max(0, more));
      probes.push(...ns.slice(fresh.length));
      const base = attached.length;
      const adds = await mapLimit(fresh.length, async (i) => {
        const key = `load${base + i}`;
        const r = must(
          await invoke(s, "ADD", { pod: fresh[i], key }),
          `${s.label} ADD (load)`,
        );
        return { ns: fresh[i] as Netns, json: r.json, key };
      }, { limit: 16 });
      attached.push(...adds);
      if (more < 0) await detach(count);
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const level = samples.get(count) ?? { add: [], ids: new Set() };
      samples.set(count, level);
      const lat: Latency = { add: [], del: [] };
      for (const [i, pod] of ns.slice(fresh.length).entries()) {
        const key = `probe${pass}-${count}-${i}`;
        level.ids.add(`${s.idPrefix}${key}`);
        await addDel(s, { ns: pod, key }, lat);
      }
      level.add.push(...lat.add);
      for (const p of probes.splice(0)) await p[Symbol.asyncDispose]();
    }
  } finally {
    await detach(0);
    for (const p of probes) await p[Symbol.asyncDispose]();
  }
  const p50: number[] = [];
  const agentP50: number[] = [];
  for (const count of present) {
    const level = samples.get(count);
    if (level === undefined) continue;
    p50.push(quantile(level.add, 0.5));
    const inAgent = await agentMs(s.stateDir, level.ids);
    if (inAgent.length > 0) agentP50.push(quantile(inAgent, 0.5));
  }
  return { p50, agentP50 };
}

async function burst(s: Subject, n: number): Promise<Burst> {
  await podsUpTo(s, n);
  const t0 = performance.now();
  const runs = await Promise.all(
    Array.from(
      { length: n },
      (_, i) => invoke(s, "ADD", { pod: s.pods[i], key: String(i), rss: true }),
    ),
  );
  const wallMs = performance.now() - t0;
  const ok = runs.filter((r) => r.code === 0);
  const ips = ok.flatMap((r) => resultIp(r) ?? []);
  const rss = runs.flatMap((r) => r.rssKb ?? []);
  const failures = [
    ...new Set(
      runs.filter((r) => r.code !== 0).map((r) =>
        String(r.json?.msg ?? r.stderr.trim()).slice(0, 160)
      ),
    ),
  ];
  // Tear the burst down (not timed), so the next one starts clean.
  await mapLimit(n, async (i) => {
    const r = runs[i];
    if (r === undefined || r.code !== 0) return;
    must(
      await invoke(s, "DEL", {
        pod: s.pods[i],
        key: String(i),
        prevResult: r.json,
      }),
      "DEL",
    );
  }, { limit: 16 });
  return {
    n,
    wallMs,
    ok: ok.length,
    dups: duplicates(ips).length,
    rssMax: Math.max(...rss),
    rssP50: quantile(rss, 0.5),
    failures,
  };
}

/** The agent's resident set now and its peak (VmRSS, VmHWM), in KB. */
async function agentRss(pid: number): Promise<{ rss: number; hwm: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kb = (k: string) =>
    Number(new RegExp(`^${k}:\\s*(\\d+)`, "m").exec(status)?.[1] ?? NaN);
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

async function timeSpawn(
  cmd: string,
  args: string[],
  options: { stdin: string; env?: Record<string, string> },
): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    env: { CNI_COMMAND: "VERSION", ...options.env },
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(enc.encode(options.stdin));
  await w.close();
  await child.status;
  return performance.now() - t0;
}

interface Startup {
  empty: number;
  agentVersion: number;
  fallbackVersion: number;
  goVersion: number;
  probe: ProbeTimes;
}

async function startup(
  dir: string,
  options: { rounds: number; agentDir: string; fallbackDir: string },
): Promise<Startup> {
  const empty = `${dir}/empty.js`;
  await Deno.writeTextFile(empty, "");
  const v = '{"cniVersion":"1.0.0"}';
  const e: number[] = [];
  const a: number[] = [];
  const f: number[] = [];
  const g: number[] = [];
  const dirs = (d: string) => ({
    AZURE_VNET_STATE_DIR: d,
    AZURE_VNET_LOG_DIR: d,
  });
  for (let i = 0; i < options.rounds; i++) {
    e.push(
      await timeSpawn(Deno.execPath(), [
        "run",
        "--no-config",
        "--no-lock",
        "--quiet",
        empty,
      ], { stdin: "" }),
    );
    a.push(
      await timeSpawn(OURS, [], { stdin: v, env: dirs(options.agentDir) }),
    );
    f.push(
      await timeSpawn(OURS, [], { stdin: v, env: dirs(options.fallbackDir) }),
    );
    g.push(await timeSpawn(GO_BRIDGE, [], { stdin: v }));
  }
  const probes: ProbeTimes[] = [];
  for (let i = 0; i < Math.min(options.rounds, 5); i++) {
    const pdir = await Deno.makeTempDir({ dir, prefix: "probe-" });
    const text = await run(Deno.execPath(), [
      "run",
      "-A",
      "--quiet",
      PROBE,
      pdir,
    ]);
    probes.push(JSON.parse(text) as ProbeTimes);
  }
  const pick = (k: keyof ProbeTimes) => quantile(probes.map((p) => p[k]), 0.5);
  return {
    empty: quantile(e, 0.5),
    agentVersion: quantile(a, 0.5),
    fallbackVersion: quantile(f, 0.5),
    goVersion: quantile(g, 0.5),
    probe: {
      toMain: pick("toMain"),
      import: pick("import"),
      dlopen: pick("dlopen"),
      netlink: pick("netlink"),
      ipam: pick("ipam"),
      ebtables: pick("ebtables"),
    },
  };
}

/** The machine's load when the run started, and when. */
interface RunStart {
  /** `Deno.loadavg()`: 1, 5 and 15 minutes. */
  load: number[];
  /** `performance.now()`. */
  at: number;
}

function runStart(): RunStart {
  return { load: Deno.loadavg(), at: performance.now() };
}

async function machine(start: RunStart): Promise<string[]> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo")).match(
    /model name\s*:\s*(.*)/,
  )?.[1] ?? "unknown";
  const mem = (await Deno.readTextFile("/proc/meminfo")).match(
    /MemTotal:\s*(\d+)/,
  )?.[1];
  const go = await run("/usr/bin/dpkg-query", [
    "-W",
    "-f",
    "${Version}",
    "containernetworking-plugins",
  ]).catch(() => "unknown");
  return [
    `- date: ${new Date().toISOString()}`,
    `- nproc: ${navigator.hardwareConcurrency}, CPU: ${cpu}`,
    `- memory: ${mem === undefined ? "?" : Math.round(Number(mem) / 1024)} MiB`,
    `- kernel: ${Deno.osRelease()}`,
    `- deno: ${Deno.version.deno} (V8 ${Deno.version.v8})`,
    `- azure-vnet: dist/azure-vnet and dist/azure-vnet-agent launchers (minified bundles)`,
    `- reference: Debian containernetworking-plugins ${go.trim()} (bridge + host-local)`,
    // Other work on the machine shifts every system; the interleaved
    // latency runs share it, the bursts (one system after another) less.
    `- load average (1, 5, 15 min): ${
      start.load.map((x) => x.toFixed(1)).join(", ")
    } at the start, ${
      Deno.loadavg().map((x) => x.toFixed(1)).join(", ")
    } at the end; the run took ${
      ((performance.now() - start.at) / 60_000).toFixed(1)
    } min`,
  ];
}

/** The bounds of one run. */
export interface BenchPlan {
  /** Interleaved ADD+DEL runs per system. */
  runs: number;
  /** Burst sizes. */
  bursts: number[];
  /** The burst sizes transparent mode runs too, a subset of `bursts`. */
  transparentBursts: number[];
  /** Pods present for the loaded ADD p50 (ascending). */
  load: number[];
  /** Timed ADD+DEL pairs per load level. */
  loadRuns: number;
  /** Rounds of the start-up timings. */
  startupRounds: number;
  /** Concurrent ADDs of the warm pool phase; 0 skips it. */
  warmPods: number;
}

/** The warm pool chart's file: `FILE` without `.md`, plus `-warm.svg`. */
function warmSvgFile(outFile: string): string {
  return outFile.replace(/\.md$/, "") + "-warm.svg";
}

/**
 * The warm pool phase (#16): runs it (see `warm_chart.ts`) and writes its
 * chart next to `outFile`.
 *
 * @returns The chart's file and what the phase measured.
 */
async function warmPhase(
  plan: BenchPlan,
  outFile: string,
): Promise<{ file: string; chart: WarmChart }> {
  out(
    `Warm pool: ${plan.warmPods} concurrent ADDs, then DELs, warm ${WARM.min}..${WARM.max}\n`,
  );
  const dir = await Deno.makeTempDir({ prefix: "cnibench-warm-" });
  const chart = await warmChart({
    pods: plan.warmPods,
    warm: WARM,
    ipCount: WARM_IPCOUNT,
    intervalMs: WARM_INTERVAL_MS,
  }, { dir, print: (l) => out(`  ${l}\n`) });
  const file = warmSvgFile(outFile);
  await Deno.writeTextFile(
    file,
    poolSvg(chart.samples, {
      title:
        `Warm pool ${WARM.min}..${WARM.max} during ${plan.warmPods} ADDs and their DELs, ${chart.samples.length} readings of /v1/pool (${
          new Date().toISOString().slice(0, 10)
        })`,
      marks: chart.marks,
    }),
  );
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", file],
    stdout: "null",
    stderr: "null",
  }).output();
  return { file, chart };
}

/** The `BENCHMARKS.md` section of the warm pool phase. */
function warmSection(
  plan: BenchPlan,
  warm: { file: string; chart: WarmChart },
): string[] {
  const name = warm.file.slice(warm.file.lastIndexOf("/") + 1);
  return [
    "## Warm pool (#16)",
    "",
    "A one-node sandbox (`tools/sandbox/`: the ARM/IMDS emulator in a fabric",
    `netns, the agent with a warm pool of ${WARM.min}..${WARM.max} free addresses, its NIC`,
    `starting with ${WARM_IPCOUNT} ipconfigs), then ${plan.warmPods} concurrent ADDs (an ADD`,
    "answering 11, try again later, is retried like a runtime does) and their",
    `DELs. The agent's \`GET /v1/pool\` is read every ${WARM_INTERVAL_MS} ms inside the node;`,
    "readings start with the agent's IPAM state (the first ADD).",
    `${warm.chart.ok}/${plan.warmPods} ADDs succeeded in ${
      fmt(warm.chart.addWallMs)
    } ms: [${name}](${name}).`,
    "",
    `![Warm pool size and free addresses over time](${name})`,
    "",
  ];
}

/** The direct comparison of ours the issue asks for (#15). */
const VERSUS = [{ who: "transparent", base: "agent" }] as const;

/** Colours of the latency chart, per system. */
const COLORS = {
  agent: "#1f77b4",
  transparent: "#9467bd",
  fallback: "#ff7f0e",
  ref: "#2ca02c",
};

/** An agent's memory after a burst, KB (VmRSS, VmHWM). */
type AgentMemory = { rss: number; hwm: number };

/** What one burst size gave each system; `t` absent when it was skipped. */
interface BurstSet {
  a: Burst;
  f: Burst;
  t: Burst | undefined;
  r: Burst;
  /** The agents' memory right after their bursts. */
  agentAfter: AgentMemory;
  transparentAfter: AgentMemory | undefined;
}

/** `| a | b |` of an agent's memory, `| - | - |` when not measured. */
function memoryCells(m: AgentMemory | undefined): string {
  return m === undefined ? "- | -" : `${m.rss} | ${m.hwm}`;
}

async function inner(plan: BenchPlan, outFile: string): Promise<number> {
  const start = runStart();
  await privateMounts();
  await using n = await AzureNode.create(SUBNET, {
    tag: "cnibench",
    attachCurrent: true,
  });
  const maxLoad = Math.max(0, ...plan.load);
  const poolSize = Math.max(WARMUP, plan.runs, ...plan.bursts, maxLoad) +
    plan.loadRuns + 50;
  const { agent, fallback, transparent, ref } = await subjects(n, poolSize);
  const all = [agent, fallback, transparent, ref];
  const ours = [agent, fallback, transparent];
  const fallbackDir = fallback.stateDir;
  // Both agents start before any ADD: each reconciles its state with the
  // kernel on start, and none of the other networks' links exist yet.
  await using agents = new AsyncDisposableStack();
  const serve = async (dir: string) => {
    const agent = await spawnAgent({
      agent: AGENT,
      cniPath: CNI_PATH,
      stateDir: dir,
      logDir: dir,
    });
    agents.defer(async () => {
      await agent.stop();
    });
    const pid = agent.child.pid;
    out(`Agent: pid ${pid} on ${dir}/azure-vnet-agent.sock\n`);
    return pid;
  };
  const agentPid = await serve(n.dir);
  const transparentPid = await serve(transparent.stateDir);
  for (const s of all) await podsUpTo(s, WARMUP);
  // Warm-up: the first azure-vnet ADD creates the network (bridge, rules;
  // in transparent mode it turns IPv4 forwarding on).
  for (const s of all) {
    for (let i = 0; i < WARMUP; i++) await latency(s, i, { add: [], del: [] });
  }
  // Loaded ADD p50 first, while the node holds few other namespaces.
  const loaded = new Map<Subject, Loaded>();
  if (plan.load.length > 0) {
    out(`ADD p50 with ${plan.load.join(", ")} pods present\n`);
    for (const s of all) {
      loaded.set(s, await loadedAddP50(s, plan.load, plan.loadRuns));
    }
  }
  out(`Latency: ${plan.runs} interleaved ADD+DEL runs each\n`);
  for (const s of all) await podsUpTo(s, plan.runs);
  const lat = new Map<Subject, Latency>(
    all.map((s) => [s, { add: [], del: [] }]),
  );
  for (let i = 0; i < plan.runs; i++) {
    for (const s of all) await latency(s, i, lat.get(s) as Latency);
  }
  const latOf = (s: Subject) => lat.get(s) as Latency;
  const [la, lf, lt, lr] = [agent, fallback, transparent, ref].map(latOf) as [
    Latency,
    Latency,
    Latency,
    Latency,
  ];
  const lines = latencyLines(
    ours.map((s) => ({ who: s.label, value: latOf(s) })),
    { reference: lr, versus: VERSUS },
  );
  const burstRows: string[] = [];
  const bursts = new Map<number, BurstSet>();
  const agentRssRows: string[] = [];
  for (const size of plan.bursts) {
    out(`Burst of ${size} concurrent ADDs\n`);
    // Transparent right after bridge mode, so the pair #15 compares runs
    // under the most similar load.
    const a = await burst(agent, size);
    const agentAfter = await agentRss(agentPid);
    const runT = plan.transparentBursts.includes(size);
    const t = runT ? await burst(transparent, size) : undefined;
    const transparentAfter = runT ? await agentRss(transparentPid) : undefined;
    const f = await burst(fallback, size);
    const r = await burst(ref, size);
    bursts.set(size, { a, f, t, r, agentAfter, transparentAfter });
    const measured: Of<Burst>[] = [
      { who: agent.label, value: a },
      { who: fallback.label, value: f },
      ...(t === undefined ? [] : [{ who: transparent.label, value: t }]),
    ];
    lines.push(...burstLines(measured, { reference: r, versus: VERSUS }));
    const memory = { agent: agentAfter, "transparent agent": transparentAfter };
    for (const [who, m] of Object.entries(memory)) {
      if (m === undefined) continue;
      lines.push(
        `${who} RSS after burst ${size}: ${m.rss} KB (peak ${m.hwm} KB)`,
      );
    }
    agentRssRows.push(
      `| ${size} | ${memoryCells(agentAfter)} | ${
        memoryCells(transparentAfter)
      } |`,
    );
    for (const m of measured) burstRows.push(burstRow(m.who, m.value));
    burstRows.push(burstRow(ref.label, r));
  }
  const lo = plan.load[0];
  const hi = plan.load.at(-1);
  const loadRows: string[] = [];
  for (const s of all) {
    const { p50, agentP50 } = loaded.get(s) ?? { p50: [], agentP50: [] };
    const rows = [
      { what: "ADD p50", of: s.label, p: p50 },
      {
        what: "agent time per ADD",
        of: `${s.label}, in the agent`,
        p: agentP50,
      },
    ];
    for (const { what, of, p } of rows) {
      if (p.length === 0) continue;
      if (lo !== undefined && hi !== undefined && p.length > 1) {
        lines.push(ratioLine(
          `${what} with ${hi} vs ${lo} pods present (${s.label})`,
          { ours: p.at(-1) ?? NaN, theirs: p[0] ?? NaN, unit: "ms" },
        ));
      }
      loadRows.push(`| ${of} | ${p.map(fmt).join(" | ")} |`);
    }
  }
  out("Start-up\n");
  const st = await startup(n.dir, {
    rounds: plan.startupRounds,
    agentDir: n.dir,
    fallbackDir,
  });
  lines.push(
    ratioLine(
      "plugin start-up (agent, VERSION forwarded) vs `deno run` empty",
      {
        ours: st.agentVersion,
        theirs: st.empty,
        unit: "ms",
      },
    ),
  );
  lines.push(
    ratioLine(
      "plugin start-up (fallback, VERSION in process) vs `deno run` empty",
      {
        ours: st.fallbackVersion,
        theirs: st.empty,
        unit: "ms",
      },
    ),
  );
  lines.push(ratioLine("VERSION (process start to exit, agent)", {
    ours: st.agentVersion,
    theirs: st.goVersion,
    unit: "ms",
  }));
  let warm: { file: string; chart: WarmChart } | undefined;
  if (plan.warmPods > 0) warm = await warmPhase(plan, outFile);
  if (warm !== undefined) {
    lines.push(
      `warm pool ${WARM.min}..${WARM.max}: ${warm.chart.ok}/${plan.warmPods} ADDs in ${
        fmt(warm.chart.addWallMs)
      } ms`,
    );
  }
  const svgFile = outFile.replace(/\.md$/, "") + ".svg";
  const svgName = svgFile.slice(svgFile.lastIndexOf("/") + 1);
  await Deno.writeTextFile(
    svgFile,
    latencySvg(
      latencySeries([
        { label: "agent", latency: la, color: COLORS.agent },
        { label: "transparent", latency: lt, color: COLORS.transparent },
        { label: "fallback", latency: lf, color: COLORS.fallback },
        { label: ref.label, latency: lr, color: COLORS.ref },
      ]),
      {
        title: `ADD and DEL latency, ${plan.runs} runs each (${
          new Date().toISOString().slice(0, 10)
        })`,
      },
    ),
  );
  // The issues' targets (#14; #15 expects transparent mode to beat bridge
  // mode), next to what this run measured.
  const p50 = (l: Latency, v: "add" | "del") => quantile(l[v], 0.5);
  const big = Math.max(...plan.bursts);
  const bb = bursts.get(big);
  const pluginRss = Math.max(...[...bursts.values()].map((b) => b.a.rssMax));
  const pa = loaded.get(agent)?.p50 ?? [];
  const agentAfter = bb?.agentAfter ?? { rss: NaN, hwm: NaN };
  const allOk = (b: Burst) => ({ text: `, ${b.ok}/${big}`, met: b.ok === big });
  const targets = [
    "| measure | target | measured | met |",
    "|---|---|---|---|",
    ratioTargetRow("ADD p50 with the agent", {
      target: "≤ 2× bridge + host-local",
      ours: p50(la, "add"),
      theirs: p50(lr, "add"),
      atMost: 2,
    }),
    ratioTargetRow("DEL p50 with the agent", {
      target: "≤ 1.2×",
      ours: p50(la, "del"),
      theirs: p50(lr, "del"),
      atMost: 1.2,
    }),
    ...(bb === undefined ? [] : [
      ratioTargetRow(`${big}-burst wall with the agent`, {
        target: `≤ 2×, ${big}/${big}`,
        ours: bb.a.wallMs,
        theirs: bb.r.wallMs,
        atMost: 2,
        extra: allOk(bb.a),
      }),
    ]),
    targetRow("plugin peak RSS (with the agent, max over the bursts)", {
      target: "≤ 35 MB",
      measured: `${(pluginRss / 1024).toFixed(1)} MB`,
      met: pluginRss <= 35 * 1024,
    }),
    targetRow(`agent RSS after the ${big}-burst`, {
      target: "≤ 150 MB",
      measured: `${(agentAfter.rss / 1024).toFixed(1)} MB (peak ${
        (agentAfter.hwm / 1024).toFixed(1)
      } MB)`,
      met: agentAfter.rss <= 150 * 1024,
    }),
    ...(pa.length > 1 && lo !== undefined && hi !== undefined
      ? [
        ratioTargetRow(`ADD p50 with ${hi} pods present (agent)`, {
          target: `≤ 1.15× ADD p50 with ${lo} present`,
          ours: pa.at(-1) ?? NaN,
          theirs: pa[0] ?? NaN,
          atMost: 1.15,
        }),
      ]
      : []),
    ratioTargetRow("fallback ADD p50", {
      target: "≤ 4×",
      ours: p50(lf, "add"),
      theirs: p50(lr, "add"),
      atMost: 4,
    }),
    ratioTargetRow("transparent ADD p50 (#15)", {
      target: "< 1× ADD p50 with the agent (bridge mode)",
      ours: p50(lt, "add"),
      theirs: p50(la, "add"),
      below: 1,
    }),
    ratioTargetRow("transparent DEL p50 (#15)", {
      target: "< 1× DEL p50 with the agent (bridge mode)",
      ours: p50(lt, "del"),
      theirs: p50(la, "del"),
      below: 1,
    }),
    ...(bb?.t === undefined ? [] : [
      ratioTargetRow(`${big}-burst wall, transparent (#15)`, {
        target: `< 1× with the agent (bridge mode), ${big}/${big}`,
        ours: bb.t.wallMs,
        theirs: bb.a.wallMs,
        below: 1,
        extra: allOk(bb.t),
      }),
    ]),
  ];
  const p = st.probe;
  const md = [
    "# Benchmarks",
    "",
    "Generated by `deno task bench` (`tools/bench/bench.ts`); rerun to refresh.",
    "Four systems in one run, in the same node namespace, interleaved:",
    "**agent** is the `dist/azure-vnet` launcher forwarding each call to",
    "`dist/azure-vnet-agent` (#14), in bridge mode; **transparent** is the",
    'same in `"mode": "transparent"` (#15: routed, no bridge, no ebtables),',
    "on a NIC, state dir and so an agent of its own; **fallback** is the same",
    "launcher with no agent listening (the full plugin in process, bridge",
    "mode, on a NIC, bridge and state dir of its own); the reference is",
    "Debian's Go `bridge` + `host-local`. All use `cniVersion` 1.0.0. Each",
    "gets a fresh pod namespace per ADD; DEL gets the ADD's `prevResult`.",
    "State and logs are on a tmpfs, as a node's `/var/run` is. Run",
    "`deno task build` first.",
    "",
    "## Machine",
    "",
    ...(await machine(start)),
    "",
    "## Targets (#14, #15)",
    "",
    "Measured, never timed tests. Ratios are against bridge + host-local in",
    "the same run; the transparent rows (#15 expects transparent mode to beat",
    "bridge mode, as it has no ebtables work) against bridge mode with the",
    "agent.",
    "",
    ...targets,
    "",
    "## Summary (ours vs reference = ratio)",
    "",
    "`(who)` is against bridge + host-local; `(transparent vs agent)` is",
    "transparent mode against bridge mode, both with their agent.",
    "",
    "```text",
    ...lines,
    "```",
    "",
    "## Latency",
    "",
    `${plan.runs} runs each, interleaved (agent, fallback, transparent, reference,`,
    `...), after ${WARMUP} warm-up ADD+DEL pairs each (ours create their networks on the`,
    "first).",
    "Times are process spawn to exit as seen by the caller, in ms.",
    `The distributions: [${svgName}](${svgName}).`,
    "",
    `![ADD and DEL latency](${svgName})`,
    "",
    "| system | ADD p50 | ADD p95 | DEL p50 | DEL p95 |",
    "|---|---|---|---|---|",
    latencyRow("azure-vnet + agent", la),
    latencyRow("azure-vnet transparent + agent", lt),
    latencyRow("azure-vnet fallback", lf),
    latencyRow("bridge+host-local", lr),
    "",
    "## ADD p50 with pods present",
    "",
    "Each system in turn, at each level up and back down",
    `(${loadPath(plan.load).join(", ")}): its pods attached or removed (each`,
    `in a namespace of its own), ${
      SETTLE_MS / 1000
    } s of rest, then ${plan.loadRuns} timed`,
    "ADD+DEL pairs on fresh pods; a level's p50 takes both its passes. Run",
    "before the latency and burst runs, and removed again, so the node holds",
    "few other namespaces. The agent's own time per ADD (from accepting the",
    "call to its reply, as its log gives it) leaves out the plugin process and",
    "shows what the agent's work does as pods are added.",
    "",
    `| system | ${plan.load.map((c) => `${c} present`).join(" | ")} |`,
    `|---|${plan.load.map(() => "---").join("|")}|`,
    ...loadRows,
    "",
    "## Bursts of concurrent ADDs",
    "",
    "All N ADDs are spawned at once, each in its own pod namespace, from a",
    "/16 pool. Peak RSS per process is the kernel's maxrss of each plugin",
    "process (`/usr/bin/time -f %M`; with the agent that is the thin plugin,",
    "the work's memory is the agent's). Children such as ebtables or",
    "host-local count only as their own maximum, not summed. The systems run",
    "one after another: agent, transparent, fallback, reference.",
    ...(plan.transparentBursts.length === plan.bursts.length ? [] : [
      plan.transparentBursts.length === 0
        ? "Transparent mode ran no burst (`--transparent-bursts`)."
        : `Transparent mode ran the bursts of ${
          plan.transparentBursts.join(", ")
        } only (\`--transparent-bursts\`).`,
    ]),
    "",
    "| N | system | wall ms | successes | duplicate IPs | RSS p50 KB | RSS max KB | failures |",
    "|---|---|---|---|---|---|---|---|",
    ...burstRows,
    "",
    "Each agent's memory (`/proc/<pid>/status`) right after its burst: the",
    "bridge-mode agent's and the transparent-mode agent's (a process of its",
    "own, serving its own state dir):",
    "",
    "| after burst | agent VmRSS KB | agent VmHWM (peak) KB | transparent agent VmRSS KB | transparent agent VmHWM (peak) KB |",
    "|---|---|---|---|---|",
    ...agentRssRows,
    "",
    "## Start-up",
    "",
    "Medians. The first five are whole processes timed by the caller; the",
    "rest come from `tools/bench/startup_probe.ts`, which imports the",
    "sources unbundled and times each sub-step of an in-process ADD.",
    "",
    "| step | ms |",
    "|---|---|",
    `| runtime start: \`deno run\` of an empty script | ${fmt(st.empty)} |`,
    `| thin plugin: \`dist/azure-vnet\` VERSION forwarded to the agent | ${
      fmt(st.agentVersion)
    } |`,
    `| fallback: \`dist/azure-vnet\` VERSION in process (full bundle load) | ${
      fmt(st.fallbackVersion)
    } |`,
    `| full bundle load and setup (fallback minus empty script) | ${
      fmt(st.fallbackVersion - st.empty)
    } |`,
    `| reference: Go \`bridge\` VERSION | ${fmt(st.goVersion)} |`,
    `| probe: process start to first line (\`performance.now()\`) | ${
      fmt(p.toMain)
    } |`,
    `| probe: module load, sources unbundled (cni, netlink, ipam) | ${
      fmt(p.import)
    } |`,
    `| probe: dlopen of libnl + symbol binding (first dumps minus warm dumps) | ${
      fmt(p.dlopen)
    } |`,
    `| probe: netlink link+addr+route dumps, warm | ${fmt(p.netlink)} |`,
    `| probe: IPAM ADD in process (static, empty state, lock + fsync) | ${
      fmt(p.ipam)
    } |`,
    `| probe: one \`ebtables -t nat -L\` exec | ${fmt(p.ebtables)} |`,
    "",
    ...(warm === undefined ? [] : warmSection(plan, warm)),
  ].join("\n");
  await Deno.writeTextFile(outFile, md);
  // Keep the committed files `deno fmt` clean (it formats SVG too).
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", outFile, svgFile],
    stdout: "null",
    stderr: "null",
  }).output();
  out(
    `${lines.join("\n")}\n${
      targets.join("\n")
    }\nWrote ${outFile} and ${svgFile}${
      warm === undefined ? "" : ` and ${warm.file}`
    }\n`,
  );
  return 0;
}

function positiveInts(text: string): number[] | undefined {
  const xs = text.split(",").filter((x) => x !== "").map(Number);
  return xs.every((x) => Number.isInteger(x) && x > 0) ? xs : undefined;
}

/**
 * The run's bounds from the command line, with `VNET_BENCH_*` as defaults.
 *
 * @param values The parsed options.
 * @param env The environment.
 * @returns The plan, or undefined when a value is not a positive integer.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { benchPlan } from "./bench.ts";
 * const plan = benchPlan({ runs: "7" }, { VNET_BENCH_BURSTS: "10,20" });
 * assert.equal(plan?.runs, 7);
 * assert.deepEqual(plan?.bursts, [10, 20]);
 * assert.deepEqual(plan?.transparentBursts, [10, 20]);
 * assert.deepEqual(benchPlan({ quick: true }, {})?.bursts, [10]);
 * assert.equal(benchPlan({ "warm-pods": "0" }, {})?.warmPods, 0);
 * assert.equal(benchPlan({ runs: "0" }, {}), undefined);
 * ```
 */
export function benchPlan(
  values: Readonly<Record<string, string | boolean | undefined>>,
  env: Readonly<Record<string, string | undefined>>,
): BenchPlan | undefined {
  const quick = values.quick === true;
  const pick = (opt: string, name: string, full: string, small: string) => {
    const v = values[opt];
    return typeof v === "string" ? v : env[name] ?? (quick ? small : full);
  };
  const runs = positiveInts(pick("runs", "VNET_BENCH_RUNS", "30", "5"));
  const bursts = positiveInts(
    pick("bursts", "VNET_BENCH_BURSTS", "30,110,250", "10"),
  );
  // Unset: every burst size; a subset only (an empty list: none).
  const tbOpt = values["transparent-bursts"];
  const tb = typeof tbOpt === "string"
    ? tbOpt
    : env.VNET_BENCH_TRANSPARENT_BURSTS;
  const transparentBursts = tb === undefined ? bursts : positiveInts(tb);
  const load = positiveInts(pick("load", "VNET_BENCH_LOAD", "10,250", "5,20"));
  const loadRuns = positiveInts(
    pick("load-runs", "VNET_BENCH_LOAD_RUNS", "20", "5"),
  );
  const startupRounds = positiveInts(
    pick("startup-rounds", "VNET_BENCH_STARTUP_ROUNDS", "10", "3"),
  );
  const warmPods = Number(pick("warm-pods", "VNET_BENCH_WARM_PODS", "30", "8"));
  if (
    runs?.length !== 1 || bursts === undefined || bursts.length === 0 ||
    transparentBursts?.every((b) => bursts.includes(b)) !== true ||
    load === undefined || loadRuns?.length !== 1 ||
    startupRounds?.length !== 1 || !Number.isInteger(warmPods) ||
    warmPods < 0
  ) return undefined;
  return {
    runs: runs[0] ?? 1,
    bursts,
    transparentBursts,
    load: [...load].sort((a, b) => a - b),
    loadRuns: loadRuns[0] ?? 1,
    startupRounds: startupRounds[0] ?? 1,
    warmPods,
  };
}

/**
 * The benchmark's entry: parses the command line and runs the benchmark in
 * a private network and mount namespace (re-executing itself there).
 *
 * @param argv See the usage: `--quick`, `--runs N` (default 30),
 * `--bursts 30,110,250`, `--transparent-bursts LIST` (default the bursts;
 * a subset of them, empty for none), `--load 10,250`, `--load-runs N` (20),
 * `--startup-rounds N` (10), `--warm-pods N` (30; 0 skips the warm pool
 * phase), `--warm-chart-only`, `--out FILE` (default `BENCHMARKS.md` at the
 * repository root; the charts go next to it as `.svg` and `-warm.svg`).
 * @returns The exit code: 0, 1 on failure, 2 on a bad command line.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCli(argv, {
    usage: USAGE,
    options: {
      quick: { type: "boolean" },
      runs: { type: "string" },
      bursts: { type: "string" },
      "transparent-bursts": { type: "string" },
      load: { type: "string" },
      "load-runs": { type: "string" },
      "startup-rounds": { type: "string" },
      "warm-pods": { type: "string" },
      "warm-chart-only": { type: "boolean" },
      out: { type: "string", default: `${ROOT}BENCHMARKS.md` },
    },
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const plan = benchPlan(parsed.values, Deno.env.toObject());
  if (plan === undefined) {
    Deno.stderr.writeSync(enc.encode(`${USAGE}\n`));
    return 2;
  }
  if (Deno.uid() !== 0) {
    Deno.stderr.writeSync(enc.encode("Cannot run the benchmark: not root\n"));
    return 1;
  }
  for (const f of [OURS, AGENT]) {
    await Deno.stat(f).catch((err) => {
      throw new Error(`Cannot find "${f}": run \`deno task build\``, {
        cause: err,
      });
    });
  }
  if (Deno.env.get("VNET_BENCH_INNER") !== "1") {
    const child = new Deno.Command("unshare", {
      args: [
        "--net",
        "--mount",
        "--propagation",
        "private",
        "--",
        Deno.execPath(),
        "run",
        "-A",
        SELF,
        ...argv,
      ],
      env: { VNET_BENCH_INNER: "1" },
      stdin: "null",
    }).spawn();
    return (await child.status).code;
  }
  const outFile = String(parsed.values.out);
  if (parsed.values["warm-chart-only"] === true) {
    await privateMounts();
    const { file, chart } = await warmPhase(plan, outFile);
    out(
      `${chart.ok}/${plan.warmPods} ADDs in ${
        fmt(chart.addWallMs)
      } ms; wrote ${file}\n`,
    );
    return 0;
  }
  return await inner(plan, outFile);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
