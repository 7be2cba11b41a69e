/**
 * Netlink micro-benchmark: median latency of our libnl verbs against the
 * equivalent `ip` command, per operation, printed as a markdown table.
 *
 * Run as root: `deno run -A tools/bench/netlink_bench.ts [--runs N]`. All
 * work happens inside two namespaces the benchmark creates ("host" and
 * "container") and deletes; the machine's own interfaces are not touched.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { NetlinkHandle, netnsAdd, netnsDel } from "@vnet/netlink";

/** One measured operation: ours and `ip`, in ms per run. */
interface Row {
  op: string;
  ours: number[];
  ip: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1
    ? s[mid] ?? NaN
    : ((s[mid - 1] ?? NaN) + (s[mid] ?? NaN)) / 2;
}

function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

function ipSync(args: string[]): void {
  const out = new Deno.Command("ip", { args, stdout: "null", stderr: "piped" })
    .outputSync();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`Command "ip ${args.join(" ")}" failed: ${err}`);
  }
}

/**
 * Runs the benchmark and returns the markdown table.
 *
 * @param options `runs`: repetitions per operation.
 * @returns The table text.
 */
export function benchNetlink(options: { runs: number }): string {
  const tag = crypto.randomUUID().slice(0, 5);
  const hostName = `cnibench-h${tag}`;
  const ctrName = `cnibench-c${tag}`;
  const hostNs = netnsAdd(hostName);
  let ctrNs: string | undefined;
  const rows: Row[] = [
    "veth add (peer in netns)",
    "link up",
    "addr add",
    "route add",
    "link del (veth)",
  ].map((op) => ({ op, ours: [], ip: [] }));
  const [veth, up, addr, route, del] = rows as [Row, Row, Row, Row, Row];
  try {
    ctrNs = netnsAdd(ctrName);
    using nl = NetlinkHandle.openNetns(hostNs);
    nl.linkSetUp("lo");
    for (let i = 0; i < options.runs; i++) {
      // ours
      veth.ours.push(timed(() =>
        nl.linkAddVeth({
          name: "bench0",
          peerName: "eth0",
          peerNetns: ctrNs ?? "",
        })
      ));
      up.ours.push(timed(() => nl.linkSetUp("bench0")));
      addr.ours.push(timed(() => nl.addrAdd("bench0", "10.123.0.1/24")));
      route.ours.push(
        timed(() =>
          nl.routeAdd({
            dst: "10.124.0.0/16",
            gw: "10.123.0.2",
            link: "bench0",
          })
        ),
      );
      del.ours.push(timed(() => nl.linkDelSync("bench0")));
      // ip
      const n = ["-n", hostName];
      veth.ip.push(
        timed(() =>
          ipSync([
            ...n,
            "link",
            "add",
            "bench0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ctrName,
          ])
        ),
      );
      up.ip.push(timed(() => ipSync([...n, "link", "set", "bench0", "up"])));
      addr.ip.push(
        timed(() =>
          ipSync([...n, "addr", "add", "10.123.0.1/24", "dev", "bench0"])
        ),
      );
      route.ip.push(
        timed(() =>
          ipSync([
            ...n,
            "route",
            "add",
            "10.124.0.0/16",
            "via",
            "10.123.0.2",
            "dev",
            "bench0",
          ])
        ),
      );
      del.ip.push(timed(() => ipSync([...n, "link", "del", "bench0"])));
    }
  } finally {
    netnsDel(hostName);
    if (ctrNs !== undefined) netnsDel(ctrName);
  }
  const lines = [
    `| operation (median of ${options.runs}) | ours (ms) | \`ip\` (ms) | ratio |`,
    "|---|---|---|---|",
  ];
  for (const r of rows) {
    const a = median(r.ours);
    const b = median(r.ip);
    lines.push(
      `| ${r.op} | ${a.toFixed(2)} | ${b.toFixed(2)} | ${
        (b / a).toFixed(1)
      }x |`,
    );
  }
  return `${lines.join("\n")}\n`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { runs: { type: "string", default: "30" } },
    strict: true,
  });
  const runs = Number(values.runs);
  if (Deno.uid() !== 0 || !Number.isInteger(runs) || runs < 1) {
    Deno.stderr.writeSync(
      new TextEncoder().encode(
        "Usage (as root): deno run -A tools/bench/netlink_bench.ts [--runs N]\n",
      ),
    );
    Deno.exitCode = 2;
  } else {
    Deno.stdout.writeSync(new TextEncoder().encode(benchNetlink({ runs })));
  }
}
