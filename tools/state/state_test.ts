import assert from "node:assert/strict";
import { Ebtables, type EbtablesRunner } from "@vnet/azure-vnet";
import type {
  AzureVnetState,
  EndpointRecord,
  NetworkRecord,
} from "@vnet/azure-vnet";
import { runStateCli } from "./cli.ts";
import { ipamFromEndpoints, parsePodDnatRules } from "./rebuild.ts";
import { repairState } from "./repair.ts";

const NET: NetworkRecord = {
  name: "azure",
  mode: "bridge",
  bridge: "azure0",
  master: "eth0",
  masterMac: "00:0d:3a:f9:dc:a6",
  masterMtu: 1500,
  subnet: "10.9.0.0/24",
  gateway: "10.9.0.1",
  primaryIp: "10.9.0.4",
  savedAddrs: ["10.9.0.4/24"],
  savedRoutes: [],
  createdAt: "2024-01-01T00:00:00.000Z",
};

function ep(id: string, address: string): EndpointRecord {
  return {
    network: "azure",
    containerId: id,
    ifName: "eth0",
    netns: `/var/run/netns/${id}`,
    hostVeth: `azv${id}`,
    hostMac: "02:00:00:00:00:01",
    podMac: "02:00:00:00:00:02",
    mtu: 1500,
    addresses: [address],
    ipamRoute: "in-process",
    result: { cniVersion: "1.1.0" },
  };
}

function state(...eps: EndpointRecord[]): AzureVnetState {
  return {
    version: 1,
    networks: { azure: NET },
    endpoints: Object.fromEntries(
      eps.map((e) => [`${e.containerId}/${e.ifName}`, e]),
    ),
  };
}

Deno.test("parsePodDnatRules() keeps only per-pod IPv4 DNAT rules", () => {
  const rules = parsePodDnatRules([
    "-s Unicast -o eth0 -j snat --to-src 00:0d:3a:f9:dc:a6 --snat-arp --snat-target ACCEPT",
    "-p ARP --arp-op Request --arp-ip-dst 10.9.0.5 -j arpreply --arpreply-mac 02:00:00:00:00:05",
    "-p IPv4 -i eth0 --ip-dst 10.9.0.5 -j dnat --to-dst 02:00:00:00:00:05 --dnat-target ACCEPT",
    "-p ARP -i eth0 --arp-op Reply -j dnat --to-dst ff:ff:ff:ff:ff:ff --dnat-target ACCEPT",
  ]);
  assert.deepEqual(rules, [{
    ip: "10.9.0.5",
    mac: "02:00:00:00:00:05",
    master: "eth0",
  }]);
});

Deno.test("ipamFromEndpoints() notes a master MAC that is no MAC", () => {
  const r = ipamFromEndpoints({
    version: 1,
    networks: { azure: { ...NET, masterMac: "junk" } },
    endpoints: {},
  });
  assert.equal(r.ipam.pools["10.9.0.0/24"]?.macAddress, "");
  assert.match(r.notes.join("\n"), /master MAC "junk" is no MAC/);
});

Deno.test("ipamFromEndpoints() holds every endpoint address and reports conflicts", async (t) => {
  await t.step("holds by key, primary IP kept out, lastRefresh 0", () => {
    const r = ipamFromEndpoints(
      state(ep("a", "10.9.0.6/24"), ep("b", "10.9.0.5/24")),
    );
    assert.equal(r.ipam.lastRefresh, 0);
    const pool = r.ipam.pools["10.9.0.0/24"];
    assert.deepEqual(pool?.primaryIps, ["10.9.0.4"]);
    assert.equal(pool?.macAddress, "000d3af9dca6");
    assert.deepEqual(pool?.addresses, {
      "10.9.0.5": { containerId: "b", ifName: "eth0" },
      "10.9.0.6": { containerId: "a", ifName: "eth0" },
    });
    assert.deepEqual(r.notes, []);
  });
  await t.step("a doubly claimed address and a foreign one are noted", () => {
    const r = ipamFromEndpoints(
      state(ep("a", "10.9.0.6/24"), ep("b", "10.9.0.6/24")),
      {
        extra: [
          {
            ip: "10.9.0.7",
            subnet: "10.9.0.0/24",
            containerId: "x",
            ifName: "",
          },
          {
            ip: "10.8.0.7",
            subnet: "10.8.0.0/24",
            containerId: "y",
            ifName: "",
          },
        ],
      },
    );
    assert.equal(r.held.length, 2);
    assert.match(
      r.notes.join("\n"),
      /10\.9\.0\.6 is claimed by a\/eth0 and b\/eth0/,
    );
    assert.match(
      r.notes.join("\n"),
      /10\.8\.0\.7 of y\/ is in no recorded network/,
    );
  });
});

Deno.test("repairState() rebuilds a corrupt IPAM file and leaves parsing files alone", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "cnitest-repair-" });
  try {
    await Deno.writeTextFile(
      `${dir}/azure-vnet.json`,
      JSON.stringify(state(ep("a", "10.9.0.6/24"))),
    );
    await Deno.writeTextFile(`${dir}/azure-vnet-ipam.json`, '{"version":1,');
    const run: EbtablesRunner = () =>
      Promise.resolve({
        code: 0,
        stdout:
          "Bridge chain: PREROUTING\n-p IPv4 -i eth0 --ip-dst 10.9.0.9 -j dnat --to-dst 02:00:00:00:00:09 --dnat-target ACCEPT\n",
        stderr: "",
      });
    await t.step(
      "the corrupt file is kept aside 0600 and rebuilt",
      async () => {
        const r = await repairState(dir, {
          file: "azure-vnet-ipam.json",
          ebtables: new Ebtables({ run }),
        });
        const f = r.files[0];
        assert.equal(f?.status, "rebuilt");
        assert.match(
          f?.aside ?? "",
          /azure-vnet-ipam\.json\.corrupt-[0-9a-f]{16}$/,
        );
        assert.equal(
          ((await Deno.stat(f?.aside ?? "")).mode ?? 0) & 0o777,
          0o600,
        );
        assert.equal(await Deno.readTextFile(f?.aside ?? ""), '{"version":1,');
        const ipam = JSON.parse(
          await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
        );
        assert.deepEqual(ipam.pools["10.9.0.0/24"].addresses, {
          "10.9.0.6": { containerId: "a", ifName: "eth0" },
          "10.9.0.9": { containerId: "recovered-10.9.0.9", ifName: "" },
        });
        assert.match(
          f?.notes.join("\n") ?? "",
          /10\.9\.0\.9 is in use in the kernel/,
        );
      },
    );
    await t.step("a second run finds both files parse", async () => {
      const lines: string[] = [];
      const code = await runStateCli(["repair", "--state-dir", dir], {
        out: (s) => lines.push(s),
      });
      assert.equal(code, 0);
      assert.equal(
        lines.join(""),
        "azure-vnet.json: parses; nothing to repair\nazure-vnet-ipam.json: parses; nothing to repair\n",
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runStateCli() rejects unknown verbs, files and grace values with code 2", async () => {
  for (
    const argv of [
      ["nope"],
      ["repair", "--file", "x.json"],
      ["gc", "--grace-ms", "-1"],
    ]
  ) {
    let err = "";
    const code = await runStateCli(argv, { out() {}, err: (s) => err += s });
    assert.equal(code, 2, argv.join(" "));
    assert.match(err, /usage:/);
  }
});

Deno.test("runStateCli() prints the usage to stdout for -h and --help, code 0", async () => {
  for (const argv of [["--help"], ["-h"], ["gc", "--help"]]) {
    let out = "";
    let err = "";
    const code = await runStateCli(argv, {
      out: (s) => out += s,
      err: (s) => err += s,
    });
    assert.equal(code, 0, argv.join(" "));
    assert.match(out, /^usage:\n[\s\S]*deno task state gc /);
    assert.equal(err, "");
  }
});

Deno.test("runStateCli() refuses the read-only verbs on a missing state dir, creating nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = `${dir}/run-typo`;
    for (
      const argv of [
        ["show"],
        ["show", "--files", "--json"],
        ["gc", "--dry-run"],
        ["adopt", "--dry-run"],
      ]
    ) {
      let out = "";
      let err = "";
      const code = await runStateCli([...argv, "--state-dir", missing], {
        out: (s) => out += s,
        err: (s) => err += s,
      });
      assert.equal(code, 1, argv.join(" "));
      assert.match(err, /no such state dir ".*\/run-typo"/);
      assert.equal(out, "");
      await assert.rejects(Deno.stat(missing), Deno.errors.NotFound);
    }
    // A file where the directory should be is no state dir either.
    await Deno.writeTextFile(missing, "");
    let err = "";
    const code = await runStateCli(["show", "--state-dir", missing], {
      out() {},
      err: (s) => err += s,
    });
    assert.equal(code, 1);
    assert.match(err, /state dir ".*\/run-typo" is no directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The Go azure-vnet v0.91's node (tests/testdata/acn-v0.91-node). */
const ACN_FIXTURE = new URL(
  "../../tests/testdata/acn-v0.91-node/",
  import.meta.url,
);

Deno.test("state adopt --dry-run shows the Go state's conversion; adopt does it, keeping the Go files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const files = ["azure-vnet.json", "azure-vnet-ipam.json"];
    const go = new Map<string, Uint8Array>();
    for (const f of files) {
      const bytes = await Deno.readFile(new URL(f, ACN_FIXTURE));
      go.set(f, bytes);
      await Deno.writeFile(`${dir}/${f}`, bytes);
    }
    const run = async (...argv: string[]) => {
      let out = "";
      let err = "";
      const code = await runStateCli([...argv, "--state-dir", dir], {
        out: (t) => out += t,
        err: (t) => err += t,
      });
      return { code, out, err };
    };
    const refused = await run("repair");
    assert.equal(refused.code, 1);
    assert.match(refused.err, /written by the Go azure-vnet.*state adopt/);

    const dry = await run("adopt", "--dry-run");
    assert.equal(dry.code, 0, dry.err);
    assert.match(
      dry.out,
      /azure-vnet\.json: Go azure-vnet v0\.91: would convert/,
    );
    assert.match(
      dry.out,
      /acn:acnpod14-eth0\/eth0\s+acnpod14-eth0\s+azvethacnpod1\s+c6:26:a9:28:a9:43\s+10\.99\.0\.12\/24/,
    );
    assert.match(dry.out, /10\.99\.0\.8\s+acn:acnpod2d-eth0\/eth0/);
    for (const f of files) {
      assert.deepEqual(await Deno.readFile(`${dir}/${f}`), go.get(f));
    }
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.filter((n) => n.includes("acn-backup")), []);

    const done = await run("adopt");
    assert.equal(done.code, 0, done.err);
    assert.match(
      done.out,
      /azure-vnet-ipam\.json: Go azure-vnet v0\.91: converted/,
    );
    for (const f of files) {
      assert.deepEqual(
        await Deno.readFile(`${dir}/${f}.acn-backup`),
        go.get(f),
      );
    }
    const show = await run("show", "--json");
    assert.equal(show.code, 0, show.err);
    const shown = JSON.parse(show.out);
    assert.deepEqual(Object.keys(shown.network.endpoints).sort(), [
      "acn:acnpod14-eth0/eth0",
      "acn:acnpod2d-eth0/eth0",
      "acn:acnpod3c-eth0/eth0",
    ]);
    assert.equal(
      shown.ipam.pools["10.99.0.0/24"].addresses["10.99.0.10"].containerId,
      "acn:acnpod3c-eth0",
    );
    const again = await run("adopt");
    assert.equal(again.code, 0, again.err);
    assert.match(again.out, /nothing to adopt/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
