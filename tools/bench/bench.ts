/**
 * `deno task bench`: three systems in one run, in namespaces the benchmark
 * creates: azure-vnet with its node agent (#14; the thin `dist/azure-vnet`
 * forwards to `dist/azure-vnet-agent`), azure-vnet without an agent (the
 * in-process fallback), and Debian's Go `bridge` + `host-local`.
 *
 * The process re-executes itself under `unshare --net --mount` with a
 * private tmpfs on `/run/netns`. That private network namespace is the
 * "node" of the testbed's {@link AzureNode} (`tools/testbed/`, shared with
 * the privileged tests): its `eth0` is a veth to an "azure host" namespace
 * (the gateway), and every pod is a namespace of its own. The fallback's
 * network gets a NIC of its own (`eth1`, another veth to the azure host),
 * state dir and bridge, so the three run side by side, interleaved. The
 * agent runs in the node too. Plugins run in the node directly, so no
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
  resultIp,
  run,
  spawnCni,
  startAgent,
  stopAgent,
} from "../testbed/mod.ts";
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
       [--load 10,250] [--load-runs N] [--startup-rounds N] [--warm-pods N]
       [--warm-chart-only] [--out FILE]
  Runs as root. Compares dist/azure-vnet with its agent and without (the
  fallback) against /usr/lib/cni bridge+host-local. Defaults come from
  VNET_BENCH_RUNS, VNET_BENCH_BURSTS, VNET_BENCH_LOAD, VNET_BENCH_LOAD_RUNS,
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
/** Subnets: agent's (eth0), fallback's (eth1), the reference's (bridge). */
const SUBNET = "10.200.0.0/16";
const FALLBACK_SUBNET = "10.202.0.0/16";
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

/** A private `/run/netns` (this process has a mount namespace of its own). */
async function privateNetnsDir(): Promise<void> {
  await Deno.mkdir("/run/netns", { recursive: true });
  await run("mount", [
    "-t",
    "tmpfs",
    "-o",
    "mode=0755",
    "cnibench",
    "/run/netns",
  ]);
}

/**
 * The fallback's NIC: `eth1` in the node (`.4` of its subnet), a veth to
 * `ah1` (`.1`) in the azure host, so its network has a master of its own.
 */
async function fallbackNic(n: AzureNode): Promise<void> {
  const len = FALLBACK_SUBNET.split("/")[1] ?? "";
  await ip(
    ["link", "add", "eth1", "type", "veth", "peer", "name", "ah1"]
      .concat(["netns", n.azure.name]),
    n.node.name,
  );
  await ip(
    ["addr", "add", `${hostAddress(FALLBACK_SUBNET, 1)}/${len}`, "dev", "ah1"],
    n.azure.name,
  );
  await ip(["link", "set", "ah1", "up"], n.azure.name);
  await ip(
    ["addr", "add", `${hostAddress(FALLBACK_SUBNET, 4)}/${len}`, "dev", "eth1"],
    n.node.name,
  );
  await ip(["link", "set", "eth1", "up"], n.node.name);
}

async function subjects(
  n: AzureNode,
  poolSize: number,
): Promise<{ agent: Subject; fallback: Subject; ref: Subject }> {
  const agent: Subject = {
    label: "agent",
    binary: OURS,
    idPrefix: "cnibench-a",
    env: (id, pod) => n.env(id, pod),
    node: n,
    pods: [],
    conf: n.conf(poolSize),
  };
  await fallbackNic(n);
  const fdir = await Deno.makeTempDir({ dir: n.dir, prefix: "fallback-" });
  const fallback: Subject = {
    label: "fallback",
    binary: OURS,
    idPrefix: "cnibench-f",
    env: (id, pod) => ({
      ...n.env(id, pod),
      AZURE_VNET_STATE_DIR: fdir,
      AZURE_VNET_LOG_DIR: fdir,
    }),
    node: n,
    pods: [],
    conf: {
      ...n.conf(poolSize),
      name: "azfallback",
      bridge: "azure1",
      ipam: {
        type: "azure-vnet-ipam",
        environment: "static",
        subnet: FALLBACK_SUBNET,
        primaryIp: hostAddress(FALLBACK_SUBNET, 4),
        addresses: Array.from(
          { length: poolSize },
          (_, i) => hostAddress(FALLBACK_SUBNET, 256 + i),
        ),
      },
    },
  };
  await Deno.mkdir(`${n.dir}/host-local`, { recursive: true });
  const ref: Subject = {
    label: "bridge+host-local",
    binary: GO_BRIDGE,
    idPrefix: "cnibench-b",
    env: (id, pod) => n.env(id, pod),
    node: n,
    pods: [],
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
  };
  return { agent, fallback, ref };
}

function must(r: Invocation, what: string): Invocation {
  if (r.code !== 0) {
    throw new Error(
      `${what} failed (${r.code}): ${JSON.stringify(r.json)} ${r.stderr}`,
    );
  }
  return r;
}

interface Latency {
  add: number[];
  del: number[];
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

/**
 * ADD p50 with `present` of this subject's pods attached on the node (in
 * namespaces of their own): `runs` timed ADD+DEL pairs on fresh pods,
 * after attaching the pods; everything made is removed again.
 */
async function loadedAddP50(
  s: Subject,
  present: readonly number[],
  runs: number,
): Promise<number[]> {
  const made: Netns[] = [];
  const attached: { ns: Netns; json: unknown; key: string }[] = [];
  const p50s: number[] = [];
  try {
    for (const count of present) {
      const more = count - attached.length;
      const ns = await s.node.pods(Math.max(0, more) + runs);
      made.push(...ns);
      const fresh = ns.slice(0, Math.max(0, more));
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
      const lat: Latency = { add: [], del: [] };
      for (const [i, pod] of ns.slice(fresh.length).entries()) {
        await addDel(s, { ns: pod, key: `probe${count}-${i}` }, lat);
      }
      p50s.push(quantile(lat.add, 0.5));
    }
  } finally {
    await mapLimit(attached.length, async (i) => {
      const a = attached[i];
      if (a === undefined) return;
      await invoke(s, "DEL", { pod: a.ns, key: a.key, prevResult: a.json });
    }, { limit: 16 });
    for (const ns of made) await ns[Symbol.asyncDispose]();
  }
  return p50s;
}

interface Burst {
  n: number;
  wallMs: number;
  ok: number;
  dups: number;
  rssMax: number;
  rssP50: number;
  failures: string[];
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

async function machine(): Promise<string[]> {
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
  ];
}

function fmt(x: number): string {
  return x.toFixed(1);
}

/** The bounds of one run. */
export interface BenchPlan {
  /** Interleaved ADD+DEL runs per system. */
  runs: number;
  /** Burst sizes. */
  bursts: number[];
  /** Pods present for the loaded ADD p50 (ascending). */
  load: number[];
  /** Timed ADD+DEL pairs per load level. */
  loadRuns: number;
  /** Rounds of the start-up timings. */
  startupRounds: number;
  /** Concurrent ADDs of the warm pool phase; 0 skips it. */
  warmPods: number;
}

/** Ratio `a / b`, two decimals, `x` suffix. */
function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(2)}x`;
}

/** A row of the target table: measure, target, measured, met. */
function targetRow(
  measure: string,
  target: string,
  measured: string,
  met: boolean,
): string {
  return `| ${measure} | ${target} | ${measured} | ${met ? "yes" : "**no**"} |`;
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

async function inner(plan: BenchPlan, outFile: string): Promise<number> {
  await privateNetnsDir();
  await using n = await AzureNode.create(SUBNET, {
    tag: "cnibench",
    attachCurrent: true,
  });
  const maxLoad = Math.max(0, ...plan.load);
  const poolSize = Math.max(WARMUP, plan.runs, ...plan.bursts, maxLoad) +
    plan.loadRuns + 50;
  const { agent, fallback, ref } = await subjects(n, poolSize);
  const all = [agent, fallback, ref];
  const fallbackDir = fallback.env("x", undefined).AZURE_VNET_STATE_DIR ?? "";
  const agentPid = await startAgent({
    agent: AGENT,
    cniPath: CNI_PATH,
    stateDir: n.dir,
    logDir: n.dir,
  });
  await using _agent = {
    async [Symbol.asyncDispose]() {
      await stopAgent(agentPid);
    },
  };
  out(`Agent: pid ${agentPid} on ${n.dir}/azure-vnet-agent.sock\n`);
  await podsUpTo(agent, WARMUP);
  await podsUpTo(fallback, WARMUP);
  await podsUpTo(ref, WARMUP);
  // Warm-up: the first azure-vnet ADD creates the network (bridge, rules).
  for (const s of all) {
    for (let i = 0; i < WARMUP; i++) await latency(s, i, { add: [], del: [] });
  }
  // Loaded ADD p50 first, while the node holds few other namespaces.
  const loaded = new Map<Subject, number[]>();
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
  const la = lat.get(agent) as Latency;
  const lf = lat.get(fallback) as Latency;
  const lr = lat.get(ref) as Latency;
  const lines: string[] = [];
  for (const [name, q] of [["p50", 0.5], ["p95", 0.95]] as const) {
    for (const verb of ["add", "del"] as const) {
      for (const [who, l] of [["agent", la], ["fallback", lf]] as const) {
        lines.push(ratioLine(`${verb.toUpperCase()} ${name} (${who})`, {
          ours: quantile(l[verb], q),
          theirs: quantile(lr[verb], q),
          unit: "ms",
        }));
      }
    }
  }
  const burstRows: string[] = [];
  const bursts = new Map<number, { a: Burst; f: Burst; r: Burst }>();
  const agentRssRows: string[] = [];
  let agentAfter = { rss: NaN, hwm: NaN };
  for (const size of plan.bursts) {
    out(`Burst of ${size} concurrent ADDs\n`);
    const ba = await burst(agent, size);
    agentAfter = await agentRss(agentPid);
    const bf = await burst(fallback, size);
    const br = await burst(ref, size);
    bursts.set(size, { a: ba, f: bf, r: br });
    for (const [who, b] of [["agent", ba], ["fallback", bf]] as const) {
      lines.push(ratioLine(`burst ${size} wall (${who})`, {
        ours: b.wallMs,
        theirs: br.wallMs,
        unit: "ms",
      }));
    }
    lines.push(
      `burst ${size} successes: agent ${ba.ok}/${size}, fallback ${bf.ok}/${size} vs ${br.ok}/${size}; duplicate IPs: agent ${ba.dups}, fallback ${bf.dups} vs ${br.dups}`,
    );
    for (const [who, b] of [["agent", ba], ["fallback", bf]] as const) {
      lines.push(ratioLine(`burst ${size} plugin peak RSS max (${who})`, {
        ours: b.rssMax,
        theirs: br.rssMax,
        unit: "KB",
      }));
    }
    lines.push(
      `agent RSS after burst ${size}: ${agentAfter.rss} KB (peak ${agentAfter.hwm} KB)`,
    );
    agentRssRows.push(
      `| ${size} | ${agentAfter.rss} | ${agentAfter.hwm} |`,
    );
    for (const [who, b] of [["agent", ba], ["fallback", bf], [ref.label, br]]) {
      const x = b as Burst;
      burstRows.push(
        `| ${size} | ${who} | ${
          fmt(x.wallMs)
        } | ${x.ok}/${size} | ${x.dups} | ${x.rssP50} | ${x.rssMax} | ${
          x.failures.join("; ").replaceAll("|", "/") || "-"
        } |`,
      );
    }
  }
  const lo = plan.load[0];
  const hi = plan.load.at(-1);
  const loadRows: string[] = [];
  for (const s of all) {
    const p = loaded.get(s) ?? [];
    if (lo !== undefined && hi !== undefined && p.length > 1) {
      lines.push(ratioLine(
        `ADD p50 with ${hi} vs ${lo} pods present (${s.label})`,
        { ours: p.at(-1) ?? NaN, theirs: p[0] ?? NaN, unit: "ms" },
      ));
    }
    loadRows.push(`| ${s.label} | ${p.map(fmt).join(" | ")} |`);
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
    latencySvg([
      { label: "ADD agent", samples: la.add, color: "#1f77b4" },
      { label: "ADD fallback", samples: lf.add, color: "#ff7f0e" },
      { label: "ADD bridge+host-local", samples: lr.add, color: "#2ca02c" },
      { label: "DEL agent", samples: la.del, color: "#1f77b4" },
      { label: "DEL fallback", samples: lf.del, color: "#ff7f0e" },
      { label: "DEL bridge+host-local", samples: lr.del, color: "#2ca02c" },
    ], {
      title: `ADD and DEL latency, ${plan.runs} runs each (${
        new Date().toISOString().slice(0, 10)
      })`,
    }),
  );
  // The issue's targets (#14), next to what this run measured.
  const p50 = (l: Latency, v: "add" | "del") => quantile(l[v], 0.5);
  const big = Math.max(...plan.bursts);
  const bb = bursts.get(big);
  const pluginRss = Math.max(...[...bursts.values()].map((b) => b.a.rssMax));
  const pa = loaded.get(agent) ?? [];
  const targets = [
    "| measure | target | measured | met |",
    "|---|---|---|---|",
    targetRow(
      "ADD p50 with the agent",
      "≤ 2× bridge + host-local",
      `${fmt(p50(la, "add"))} ms vs ${fmt(p50(lr, "add"))} ms = ${
        ratio(p50(la, "add"), p50(lr, "add"))
      }`,
      p50(la, "add") <= 2 * p50(lr, "add"),
    ),
    targetRow(
      "DEL p50 with the agent",
      "≤ 1.2×",
      `${fmt(p50(la, "del"))} ms vs ${fmt(p50(lr, "del"))} ms = ${
        ratio(p50(la, "del"), p50(lr, "del"))
      }`,
      p50(la, "del") <= 1.2 * p50(lr, "del"),
    ),
    ...(bb === undefined ? [] : [
      targetRow(
        `${big}-burst wall with the agent`,
        `≤ 2×, ${big}/${big}`,
        `${fmt(bb.a.wallMs)} ms vs ${fmt(bb.r.wallMs)} ms = ${
          ratio(bb.a.wallMs, bb.r.wallMs)
        }, ${bb.a.ok}/${big}`,
        bb.a.wallMs <= 2 * bb.r.wallMs && bb.a.ok === big,
      ),
    ]),
    targetRow(
      "plugin peak RSS (with the agent, max over the bursts)",
      "≤ 35 MB",
      `${(pluginRss / 1024).toFixed(1)} MB`,
      pluginRss <= 35 * 1024,
    ),
    targetRow(
      `agent RSS after the ${big}-burst`,
      "≤ 150 MB",
      `${(agentAfter.rss / 1024).toFixed(1)} MB (peak ${
        (agentAfter.hwm / 1024).toFixed(1)
      } MB)`,
      agentAfter.rss <= 150 * 1024,
    ),
    ...(pa.length > 1 && lo !== undefined && hi !== undefined
      ? [
        targetRow(
          `ADD p50 with ${hi} pods present (agent)`,
          `≤ 1.15× ADD p50 with ${lo} present`,
          `${fmt(pa.at(-1) ?? NaN)} ms vs ${fmt(pa[0] ?? NaN)} ms = ${
            ratio(pa.at(-1) ?? NaN, pa[0] ?? NaN)
          }`,
          (pa.at(-1) ?? Infinity) <= 1.15 * (pa[0] ?? 0),
        ),
      ]
      : []),
    targetRow(
      "fallback ADD p50",
      "≤ 4×",
      `${fmt(p50(lf, "add"))} ms vs ${fmt(p50(lr, "add"))} ms = ${
        ratio(p50(lf, "add"), p50(lr, "add"))
      }`,
      p50(lf, "add") <= 4 * p50(lr, "add"),
    ),
  ];
  const p = st.probe;
  const latRow = (label: string, l: Latency) =>
    `| ${label} | ${fmt(quantile(l.add, 0.5))} | ${
      fmt(quantile(l.add, 0.95))
    } | ${fmt(quantile(l.del, 0.5))} | ${fmt(quantile(l.del, 0.95))} |`;
  const md = [
    "# Benchmarks",
    "",
    "Generated by `deno task bench` (`tools/bench/bench.ts`); rerun to refresh.",
    "Three systems in one run, in the same node namespace, interleaved:",
    "**agent** is the `dist/azure-vnet` launcher forwarding each call to",
    "`dist/azure-vnet-agent` (#14); **fallback** is the same launcher with no",
    "agent listening (the full plugin in process, on a NIC, bridge and state",
    "dir of its own); the reference is Debian's Go `bridge` + `host-local`.",
    "All use `cniVersion` 1.0.0. Each gets a fresh pod namespace per ADD; DEL",
    "gets the ADD's `prevResult`. Run `deno task build` first.",
    "",
    "## Machine",
    "",
    ...(await machine()),
    "",
    "## Targets (#14)",
    "",
    "Measured, never timed tests. Ratios are against bridge + host-local in",
    "the same run.",
    "",
    ...targets,
    "",
    "## Summary (ours vs reference = ratio)",
    "",
    "```text",
    ...lines,
    "```",
    "",
    "## Latency",
    "",
    `${plan.runs} runs each, interleaved (agent, fallback, reference, ...), after`,
    `${WARMUP} warm-up ADD+DEL pairs each (ours create their bridges on the first).`,
    "Times are process spawn to exit as seen by the caller, in ms.",
    `The distributions: [${svgName}](${svgName}).`,
    "",
    `![ADD and DEL latency](${svgName})`,
    "",
    "| system | ADD p50 | ADD p95 | DEL p50 | DEL p95 |",
    "|---|---|---|---|---|",
    latRow("azure-vnet + agent", la),
    latRow("azure-vnet fallback", lf),
    latRow("bridge+host-local", lr),
    "",
    "## ADD p50 with pods present",
    "",
    `Each system in turn: its pods attached (each in a namespace of its own),`,
    `then ${plan.loadRuns} timed ADD+DEL pairs on fresh pods; run before the`,
    "latency and burst runs, and removed again, so the node holds few other",
    "namespaces.",
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
    "host-local count only as their own maximum, not summed.",
    "",
    "| N | system | wall ms | successes | duplicate IPs | RSS p50 KB | RSS max KB | failures |",
    "|---|---|---|---|---|---|---|---|",
    ...burstRows,
    "",
    "The agent's memory (`/proc/<pid>/status`) right after its burst:",
    "",
    "| after burst | VmRSS KB | VmHWM (peak) KB |",
    "|---|---|---|",
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
    load === undefined || loadRuns?.length !== 1 ||
    startupRounds?.length !== 1 || !Number.isInteger(warmPods) ||
    warmPods < 0
  ) return undefined;
  return {
    runs: runs[0] ?? 1,
    bursts,
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
 * `--bursts 30,110,250`, `--load 10,250`, `--load-runs N` (20),
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
    await privateNetnsDir();
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
