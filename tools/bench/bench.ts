/**
 * `deno task bench`: azure-vnet (the dist launcher) against Debian's Go
 * `bridge` + `host-local`, in one run, in namespaces the benchmark creates.
 *
 * The process re-executes itself under `unshare --net --mount` with a
 * private tmpfs on `/run/netns`. That private network namespace is the
 * "node" of the testbed's {@link AzureNode} (`tools/testbed/`, shared with
 * the privileged tests): its `eth0` is a veth to an "azure host" namespace
 * (the gateway), and every pod is a namespace of its own. Plugins run in
 * the node directly, so no `ip netns exec` is timed. Nothing outside is
 * touched, and everything disappears with the process.
 *
 * Measured: ADD and DEL latency (p50/p95, interleaved runs), bursts of N
 * concurrent ADDs with wall time, successes, duplicate IPs and peak RSS per
 * process (`/usr/bin/time -f %M`, the kernel's maxrss of the plugin
 * process), and a start-up breakdown. The report goes to stdout and to
 * `BENCHMARKS.md` (`--out`).
 *
 * @module
 */
import { parseCli } from "../_cli.ts";
import {
  AZURE_VNET_DIST,
  AzureNode,
  type CniRun,
  mapLimit,
  type Netns,
  resultIp,
  run,
  spawnCni,
} from "../testbed/mod.ts";
import { duplicates, quantile, ratioLine } from "./stats.ts";
import type { ProbeTimes } from "./startup_probe.ts";

const USAGE =
  `usage: deno task bench [--runs N] [--bursts 30,110,250] [--out FILE]
  Runs as root. Compares dist/azure-vnet with /usr/lib/cni bridge+host-local.`;

const ROOT = new URL("../../", import.meta.url).pathname;
const SELF = new URL("./bench.ts", import.meta.url).pathname;
const PROBE = new URL("./startup_probe.ts", import.meta.url).pathname;
const OURS = AZURE_VNET_DIST;
const GO_BRIDGE = "/usr/lib/cni/bridge";
const CNI_PATH = "/usr/lib/cni";
const TIME = "/usr/bin/time";
const RSS_MARK = "cnibench-rss=";
/** Untimed ADD+DEL pairs per plugin before the latency runs (pods 0..2). */
const WARMUP = 3;
const SUBNET = "10.200.0.0/16"; // ours; theirs: 10.201.0.0/16
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
  /** `CNI_CONTAINERID` is this plus the pod's index. */
  idPrefix: string;
  node: AzureNode;
  pods: Netns[];
}

async function invoke(
  s: Subject,
  command: string,
  opts: { pod: number; prevResult?: unknown; rss?: boolean },
): Promise<Invocation> {
  const conf = opts.prevResult === undefined
    ? s.conf
    : { ...s.conf, prevResult: opts.prevResult };
  const r = await spawnCni({
    argv: opts.rss ? [TIME, "-f", `${RSS_MARK}%M`, s.binary] : [s.binary],
    command,
    conf,
    env: s.node.env(`${s.idPrefix}${opts.pod}`, s.pods[opts.pod]),
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

async function subjects(
  n: AzureNode,
  pods: number,
): Promise<[Subject, Subject]> {
  const ours: Subject = {
    label: "azure-vnet",
    binary: OURS,
    idPrefix: "cnibench-a",
    node: n,
    pods: await n.pods(pods),
    conf: n.conf(pods + 50),
  };
  await Deno.mkdir(`${n.dir}/host-local`, { recursive: true });
  const theirs: Subject = {
    label: "bridge+host-local",
    binary: GO_BRIDGE,
    idPrefix: "cnibench-b",
    node: n,
    pods: await n.pods(pods),
    conf: {
      cniVersion: "1.0.0",
      name: "gobench",
      type: "bridge",
      bridge: "cnibr0",
      isGateway: true,
      ipam: {
        type: "host-local",
        dataDir: `${n.dir}/host-local`,
        ranges: [[{ subnet: "10.201.0.0/16", gateway: "10.201.0.1" }]],
      },
    },
  };
  return [ours, theirs];
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

async function latency(s: Subject, i: number, lat: Latency): Promise<void> {
  const add = must(await invoke(s, "ADD", { pod: i }), `${s.label} ADD`);
  lat.add.push(add.ms);
  const del = must(
    await invoke(s, "DEL", { pod: i, prevResult: add.json }),
    `${s.label} DEL`,
  );
  lat.del.push(del.ms);
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
  const t0 = performance.now();
  const runs = await Promise.all(
    Array.from(
      { length: n },
      (_, i) => invoke(s, "ADD", { pod: i, rss: true }),
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
    must(await invoke(s, "DEL", { pod: i, prevResult: r.json }), "DEL");
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

async function timeSpawn(
  cmd: string,
  args: string[],
  stdin: string,
): Promise<number> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    env: { CNI_COMMAND: "VERSION" },
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(enc.encode(stdin));
  await w.close();
  await child.status;
  return performance.now() - t0;
}

interface Startup {
  empty: number;
  oursVersion: number;
  goVersion: number;
  probe: ProbeTimes;
}

async function startup(dir: string, rounds: number): Promise<Startup> {
  const empty = `${dir}/empty.js`;
  await Deno.writeTextFile(empty, "");
  const v = '{"cniVersion":"1.0.0"}';
  const e: number[] = [];
  const o: number[] = [];
  const g: number[] = [];
  for (let i = 0; i < rounds; i++) {
    e.push(
      await timeSpawn(Deno.execPath(), [
        "run",
        "--no-config",
        "--no-lock",
        "--quiet",
        empty,
      ], ""),
    );
    o.push(await timeSpawn(OURS, [], v));
    g.push(await timeSpawn(GO_BRIDGE, [], v));
  }
  const probes: ProbeTimes[] = [];
  for (let i = 0; i < Math.min(rounds, 5); i++) {
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
    oursVersion: quantile(o, 0.5),
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
    `- azure-vnet: dist/azure-vnet launcher (minified bundle)`,
    `- reference: Debian containernetworking-plugins ${go.trim()} (bridge + host-local)`,
  ];
}

function fmt(x: number): string {
  return x.toFixed(1);
}

async function inner(
  runs: number,
  bursts: number[],
  outFile: string,
): Promise<number> {
  await privateNetnsDir();
  await using n = await AzureNode.create(SUBNET, {
    tag: "cnibench",
    attachCurrent: true,
  });
  const maxPods = Math.max(WARMUP, runs, ...bursts);
  out(`Creating ${2 * maxPods} pod namespaces\n`);
  const [ours, theirs] = await subjects(n, maxPods);
  // Warm-up: the first azure-vnet ADD creates the network (bridge, rules).
  for (const s of [ours, theirs]) {
    for (let i = 0; i < WARMUP; i++) await latency(s, i, { add: [], del: [] });
  }
  out(`Latency: ${runs} interleaved ADD+DEL runs each\n`);
  const lo: Latency = { add: [], del: [] };
  const lt: Latency = { add: [], del: [] };
  for (let i = 0; i < runs; i++) {
    await latency(ours, i, lo);
    await latency(theirs, i, lt);
  }
  const lines: string[] = [];
  for (const [name, q] of [["p50", 0.5], ["p95", 0.95]] as const) {
    lines.push(ratioLine(`ADD ${name}`, {
      ours: quantile(lo.add, q),
      theirs: quantile(lt.add, q),
      unit: "ms",
    }));
    lines.push(ratioLine(`DEL ${name}`, {
      ours: quantile(lo.del, q),
      theirs: quantile(lt.del, q),
      unit: "ms",
    }));
  }
  const burstRows: string[] = [];
  for (const n of bursts) {
    out(`Burst of ${n} concurrent ADDs\n`);
    const bo = await burst(ours, n);
    const bt = await burst(theirs, n);
    lines.push(ratioLine(`burst ${n} wall`, {
      ours: bo.wallMs,
      theirs: bt.wallMs,
      unit: "ms",
    }));
    lines.push(
      `burst ${n} successes: ${bo.ok}/${n} vs ${bt.ok}/${n}; duplicate IPs: ${bo.dups} vs ${bt.dups}`,
    );
    lines.push(ratioLine(`burst ${n} peak RSS max`, {
      ours: bo.rssMax,
      theirs: bt.rssMax,
      unit: "KB",
    }));
    for (const b of [bo, bt]) {
      const who = b === bo ? ours.label : theirs.label;
      burstRows.push(
        `| ${n} | ${who} | ${
          fmt(b.wallMs)
        } | ${b.ok}/${n} | ${b.dups} | ${b.rssP50} | ${b.rssMax} | ${
          b.failures.join("; ").replaceAll("|", "/") || "-"
        } |`,
      );
    }
  }
  out("Start-up breakdown\n");
  const st = await startup(n.dir, 10);
  lines.push(ratioLine("VERSION (process start to exit)", {
    ours: st.oursVersion,
    theirs: st.goVersion,
    unit: "ms",
  }));
  const p = st.probe;
  const md = [
    "# Benchmarks",
    "",
    "Generated by `deno task bench` (`tools/bench/bench.ts`); rerun to refresh.",
    "azure-vnet runs as the `dist/azure-vnet` launcher (run `deno task build`",
    "first); the reference is Debian's Go `bridge` + `host-local`, run in the",
    "same network namespaces with the same `cniVersion` (1.0.0). Each plugin",
    "gets a fresh pod namespace per ADD; DEL gets the ADD's `prevResult`.",
    "",
    "## Machine",
    "",
    ...(await machine()),
    "",
    "## Summary (ours vs reference = ratio)",
    "",
    "```text",
    ...lines,
    "```",
    "",
    "Targets (measured, never timed tests): ADD p50 <= 2x, DEL p50 <= 1x,",
    "250 concurrent ADDs all succeed with no lock timeout.",
    "",
    "## Latency",
    "",
    `${runs} runs each, interleaved (ours, reference, ours, ...), after ${WARMUP}`,
    "warm-up ADD+DEL pairs each (ours creates its bridge on the first).",
    "Times are process spawn to exit as seen by the caller, in ms.",
    "",
    "| plugin | ADD p50 | ADD p95 | DEL p50 | DEL p95 |",
    "|---|---|---|---|---|",
    `| azure-vnet | ${fmt(quantile(lo.add, 0.5))} | ${
      fmt(quantile(lo.add, 0.95))
    } | ${fmt(quantile(lo.del, 0.5))} | ${fmt(quantile(lo.del, 0.95))} |`,
    `| bridge+host-local | ${fmt(quantile(lt.add, 0.5))} | ${
      fmt(quantile(lt.add, 0.95))
    } | ${fmt(quantile(lt.del, 0.5))} | ${fmt(quantile(lt.del, 0.95))} |`,
    "",
    "## Bursts of concurrent ADDs",
    "",
    "All N ADDs are spawned at once, each in its own pod namespace, from a",
    "/16 pool. Peak RSS per process is the kernel's maxrss of each plugin",
    "process (`/usr/bin/time -f %M`, which includes child processes such as",
    "ebtables or host-local only as their own maximum, not summed).",
    "",
    "| N | plugin | wall ms | successes | duplicate IPs | RSS p50 KB | RSS max KB | failures |",
    "|---|---|---|---|---|---|---|---|",
    ...burstRows,
    "",
    "## Start-up breakdown (azure-vnet)",
    "",
    "Medians. The first three are whole processes timed by the caller; the",
    "rest come from `tools/bench/startup_probe.ts`, which imports the",
    "sources unbundled and times each sub-step of an ADD in process.",
    "",
    "| step | ms |",
    "|---|---|",
    `| runtime start: \`deno run\` of an empty script | ${fmt(st.empty)} |`,
    `| \`dist/azure-vnet\` VERSION (runtime + bundle load + logging setup) | ${
      fmt(st.oursVersion)
    } |`,
    `| bundle module load (the difference) | ${
      fmt(st.oursVersion - st.empty)
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
  ].join("\n");
  await Deno.writeTextFile(outFile, md);
  // Keep the committed file `deno fmt` clean.
  await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", outFile],
    stdout: "null",
    stderr: "null",
  }).output();
  out(`${lines.join("\n")}\nWrote ${outFile}\n`);
  return 0;
}

/**
 * The benchmark's entry: parses the command line and runs the benchmark in
 * a private network and mount namespace (re-executing itself there).
 *
 * @param argv `--runs N` (default 30), `--bursts 30,110,250`, `--out FILE`
 * (default `BENCHMARKS.md` at the repository root).
 * @returns The exit code: 0, 1 on failure, 2 on a bad command line.
 */
export async function main(argv: readonly string[]): Promise<number> {
  const parsed = parseCli(argv, {
    usage: USAGE,
    options: {
      runs: { type: "string", default: "30" },
      bursts: { type: "string", default: "30,110,250" },
      out: { type: "string", default: `${ROOT}BENCHMARKS.md` },
    },
  });
  if ("exitCode" in parsed) return parsed.exitCode;
  const runs = Number(parsed.values.runs);
  const bursts = String(parsed.values.bursts).split(",").map(Number);
  if (!Number.isInteger(runs) || runs < 1 || bursts.some((b) => !(b > 0))) {
    Deno.stderr.writeSync(enc.encode(`${USAGE}\n`));
    return 2;
  }
  if (Deno.uid() !== 0) {
    Deno.stderr.writeSync(enc.encode("Cannot run the benchmark: not root\n"));
    return 1;
  }
  await Deno.stat(OURS).catch((err) => {
    throw new Error(`Cannot find "${OURS}": run \`deno task build\``, {
      cause: err,
    });
  });
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
  return await inner(runs, bursts, String(parsed.values.out));
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
