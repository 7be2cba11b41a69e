/**
 * Start-up probe: imports the plugin's modules and times each sub-step of
 * an ADD in process, printing one JSON object of milliseconds on stdout.
 *
 * Run by `tools/bench/bench.ts` as root inside the benchmark's own network
 * namespace: `deno run -A tools/bench/startup_probe.ts STATE_DIR`. The
 * sources are loaded unbundled, so `import` is an upper bound of the
 * bundle's module load (the benchmark also reports the bundle's share).
 *
 * @module
 */

/** The probe's measurements, in ms. */
export interface ProbeTimes {
  /** `performance.now()` when the probe's first line ran. */
  toMain: number;
  /** Dynamic import of @vnet/cni, @vnet/netlink and @vnet/ipam. */
  import: number;
  /**
   * The first `NetlinkHandle.open()` and dumps, minus the same dumps again:
   * the lazy dlopen of libnl and symbol binding.
   */
  dlopen: number;
  /** Link, address and route dumps on the open handle, warm. */
  netlink: number;
  /** One static in-process IPAM ADD through skel into an empty state dir. */
  ipam: number;
  /** One `ebtables -t nat -L` exec. */
  ebtables: number;
}

/**
 * Runs the probe steps once.
 *
 * @param stateDir An empty, writable directory for the IPAM state.
 * @returns The step times.
 */
export async function probe(stateDir: string): Promise<ProbeTimes> {
  const toMain = performance.now();
  let t = performance.now();
  const [cni, netlink, ipam] = await Promise.all([
    import("@vnet/cni"),
    import("@vnet/netlink"),
    import("@vnet/azure-vnet-ipam"),
  ]);
  const imported = performance.now() - t;
  t = performance.now();
  using handle = netlink.NetlinkHandle.open();
  dumps(handle);
  const cold = performance.now() - t;
  t = performance.now();
  dumps(handle);
  const nl = performance.now() - t;
  const dlopen = cold - nl;
  t = performance.now();
  let out = "";
  const code = await cni.runPlugin(
    ipam.createIpamHandlers({ stateDir }),
    { name: "azure-vnet-ipam", version: "0.0.0" },
    {
      env: {
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "cnibench-probe",
        CNI_NETNS: "/proc/self/ns/net",
        CNI_IFNAME: "eth0",
        CNI_PATH: "/usr/lib/cni",
      },
      stdin: new TextEncoder().encode(JSON.stringify({
        cniVersion: "1.0.0",
        name: "probe",
        type: "azure-vnet-ipam",
        ipam: {
          type: "azure-vnet-ipam",
          environment: "static",
          subnet: "10.250.0.0/24",
          primaryIp: "10.250.0.4",
          addresses: ["10.250.0.5"],
        },
      })),
      stdout: (s) => out += s,
      stderr: () => {},
      args: [],
    },
  );
  const ipamMs = performance.now() - t;
  if (code !== 0) throw new Error(`Probe IPAM ADD failed: ${out}`);
  t = performance.now();
  await new Deno.Command("ebtables", {
    args: ["-t", "nat", "-L"],
    stdout: "null",
    stderr: "null",
  }).output();
  const ebtables = performance.now() - t;
  return {
    toMain,
    import: imported,
    dlopen,
    netlink: nl,
    ipam: ipamMs,
    ebtables,
  };
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (dir === undefined) throw new TypeError("Usage: startup_probe.ts DIR");
  const times = await probe(dir);
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(times)));
}

function dumps(handle: {
  linkList(): unknown;
  addrList(o: { family: 4 }): unknown;
  routeList(): unknown;
}): void {
  handle.linkList();
  handle.addrList({ family: 4 });
  handle.routeList();
}
