import assert from "node:assert/strict";
import { Ebtables } from "./ebtables.ts";
import {
  arpReplyRedirectRule,
  arpReplyRule,
  masterSnatRule,
  parsePodRule,
  podDnatRule,
  spoofRules,
} from "./ebtables_rules.ts";
import { FakeEbtables } from "./_fake_ebtables.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import {
  findLeftovers,
  removeLeftovers,
  transparentVethClaim,
} from "./leftovers.ts";
import type { AzureVnetState, EndpointRecord } from "./state.ts";
import { TEST_NETWORK, testEndpoint } from "./_test_records.ts";

const NET = TEST_NETWORK;

function ep(veth: string, ip: string, mac: string): EndpointRecord {
  return testEndpoint({
    containerId: veth,
    hostVeth: veth,
    ip,
    mac,
    netns: "/n",
  });
}

/**
 * A node with `eth0` on `azure0`, and the veths `azvkept` and `azvleft` on
 * it and `azvfree` on no bridge (not ours to judge).
 */
function bridgeNode() {
  const host = new FakeKernel().hostNs;
  host.addBridge({ name: "azure0", mtu: 1500, mac: NET.masterMac });
  host.addLink("eth0");
  host.setMaster("eth0", "azure0");
  for (const v of ["azvkept", "azvleft", "azvfree"]) {
    host.addLink(v, { kind: "veth" });
  }
  host.setMaster("azvkept", "azure0");
  host.setMaster("azvleft", "azure0");
  return host;
}

Deno.test("findLeftovers() picks unrecorded veths, pod rules and neighbours only", async () => {
  const host = bridgeNode();
  host.neighSet("azure0", { ip: "10.0.0.5", mac: "02:00:00:00:00:05" });
  host.neighSet("azure0", { ip: "10.0.0.7", mac: "02:00:00:00:00:07" });
  host.neighSet("azure0", { ip: "10.0.0.1", mac: "02:00:00:00:00:01" });
  const state: AzureVnetState = {
    version: 1,
    networks: { azure: NET },
    endpoints: {
      "azvkept/eth0": ep("azvkept", "10.0.0.5", "02:00:00:00:00:05"),
    },
  };
  const fake = new FakeEbtables();
  fake.shortMacs = true;
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  const kept = { ip: "10.0.0.5", mac: "02:00:00:00:00:05" };
  const left = { ip: "10.0.0.7", mac: "02:00:00:00:00:07" };
  const host4 = { ip: "10.0.0.4", mac: NET.masterMac };
  // Someone else's form (its target) for an address of no record.
  const foreignArpReply = {
    chain: "PREROUTING" as const,
    args:
      "-p ARP --arp-op Request --arp-ip-dst 10.0.0.8 -j arpreply --arpreply-mac 02:00:00:00:00:08 --arpreply-target ACCEPT"
        .split(" "),
  };
  await eb.ensureAll([
    masterSnatRule("eth0", NET.masterMac),
    arpReplyRule(host4),
    arpReplyRedirectRule("eth0"),
    arpReplyRule(kept),
    podDnatRule("eth0", kept),
    arpReplyRule(left),
    podDnatRule("eth0", left),
    podDnatRule("eth1", left),
    foreignArpReply,
  ]);
  const found = findLeftovers(host, {
    state,
    network: "azure",
    prerouting: await eb.list("PREROUTING"),
  });
  assert.deepEqual(found.veths, ["azvleft"]);
  // As listed (short MACs, the default target omitted), each form as is.
  assert.deepEqual(found.rules.map((r) => [r.chain, r.args.join(" ")]), [
    [
      "PREROUTING",
      "-p ARP --arp-op Request --arp-ip-dst 10.0.0.7 -j arpreply --arpreply-mac 2:0:0:0:0:7",
    ],
    [
      "PREROUTING",
      "-p IPv4 -i eth0 --ip-dst 10.0.0.7 -j dnat --to-dst 2:0:0:0:0:7 --dnat-target ACCEPT",
    ],
    [
      "PREROUTING",
      "-p ARP --arp-op Request --arp-ip-dst 10.0.0.8 -j arpreply --arpreply-mac 2:0:0:0:0:8 --arpreply-target ACCEPT",
    ],
  ]);
  assert.deepEqual(found.neighbours, [
    { bridge: "azure0", ip: "10.0.0.7", mac: "02:00:00:00:00:07" },
  ]);

  assert.deepEqual(await removeLeftovers({ host, ebtables: eb }, found), []);
  assert.equal(host.link("azvleft"), undefined);
  assert.ok(host.link("azvkept") !== undefined && host.link("azvfree"));
  assert.deepEqual(host.neighs("azure0").map((n) => n.ip).sort(), [
    "10.0.0.1",
    "10.0.0.5",
  ]);
  assert.deepEqual(fake.matching(/10\.0\.0\.7\b/), [
    podDnatRule("eth1", left).args.join(" "),
  ]);
  assert.equal(fake.rules.length, 6);
  assert.deepEqual(
    findLeftovers(host, { state, prerouting: await eb.list("PREROUTING") }),
    { veths: [], rules: [], neighbours: [] },
  );
});

Deno.test("findLeftovers() for one attachment takes its held addresses and its MACs, never another's address", async (t) => {
  const kernel = new FakeKernel();
  const host = kernel.hostNs;
  host.addBridge({ name: "azure0", mtu: 1500, mac: NET.masterMac });
  host.addLink("eth0");
  host.setMaster("eth0", "azure0");
  const state: AzureVnetState = {
    version: 1,
    networks: { azure: NET },
    endpoints: {},
  };
  const fake = new FakeEbtables();
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  // .5: held by this attachment, plumbed with a MAC it never had (an
  // earlier owner's); .6: its old MAC; .7: a new owner's, not recorded
  // yet; .8: its old MAC on an address another attachment holds now.
  const pods = [
    { ip: "10.0.0.5", mac: "02:00:00:00:00:55" },
    { ip: "10.0.0.6", mac: "02:00:00:00:00:66" },
    { ip: "10.0.0.7", mac: "02:00:00:00:00:77" },
    { ip: "10.0.0.8", mac: "02:00:00:00:00:66" },
  ];
  for (const pod of pods) {
    host.neighSet("azure0", pod);
    await eb.ensureAll([arpReplyRule(pod), podDnatRule("eth0", pod)]);
  }
  const prerouting = await eb.list("PREROUTING");
  function taken(spec: {
    ips: string[];
    macs: string[];
    spare?: string[];
  }): string[] {
    const found = findLeftovers(host, {
      state,
      network: "azure",
      prerouting,
      only: { ips: spec.ips, macs: spec.macs },
      ...(spec.spare === undefined ? {} : { spare: new Set(spec.spare) }),
    });
    const fromRules = found.rules.map((r) => parsePodRule(r.args)?.ip);
    assert.deepEqual(
      [...new Set(fromRules)].sort(),
      found.neighbours.map((n) => n.ip).sort(),
      "the rules and the neighbours of the same addresses",
    );
    assert.equal(fromRules.length, 2 * found.neighbours.length);
    return found.neighbours.map((n) => n.ip).sort();
  }
  await t.step("a held address whatever its MAC, and its MAC anywhere", () => {
    assert.deepEqual(
      taken({ ips: ["10.0.0.5/24"], macs: ["02:00:00:00:00:66"] }),
      ["10.0.0.5", "10.0.0.6", "10.0.0.8"],
    );
  });
  await t.step("nothing when neither an address nor a MAC is its own", () => {
    assert.deepEqual(taken({ ips: [], macs: ["02:00:00:00:00:99"] }), []);
  });
  await t.step("nothing of an address another attachment holds", () => {
    assert.deepEqual(
      taken({
        ips: ["10.0.0.5/24"],
        macs: ["02:00:00:00:00:66", "02:00:00:00:00:77"],
        spare: ["10.0.0.7", "10.0.0.8"],
      }),
      ["10.0.0.5", "10.0.0.6"],
    );
  });
});

Deno.test("findLeftovers() takes the anti-spoofing rules of veths no record names once they are gone or leftovers", async (t) => {
  // azvkept recorded, azvleft unrecorded on our bridge (a killed ADD),
  // azvfree on no bridge, and azvgone, whose veth is gone.
  const host = bridgeNode();
  const pods = {
    azvkept: { podMac: "02:00:00:00:00:05", addresses: ["10.0.0.5/24"] },
    azvleft: { podMac: "02:00:00:00:00:06", addresses: ["10.0.0.6/24"] },
    azvfree: { podMac: "02:00:00:00:00:07", addresses: ["10.0.0.7/24"] },
    azvgone: { podMac: "02:00:00:00:00:08", addresses: ["10.0.0.8/24"] },
  };
  const state: AzureVnetState = {
    version: 1,
    networks: { azure: NET },
    endpoints: {
      "azvkept/eth0": {
        ...ep("azvkept", "10.0.0.5", pods.azvkept.podMac),
        spoofCheck: true,
      },
    },
  };
  const fake = new FakeEbtables();
  fake.shortMacs = true;
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  await eb.ensureAll(
    Object.entries(pods).flatMap(([veth, pod]) => spoofRules(veth, pod)),
  );
  const prerouting = await eb.list("PREROUTING");
  function vethsOf(rules: { args: readonly string[] }[]): string[] {
    return [
      ...new Set(rules.map((r) => r.args[r.args.indexOf("-i") + 1] ?? "")),
    ];
  }

  await t.step(
    "GC: the gone veth's and the leftover veth's, all of them",
    () => {
      const found = findLeftovers(host, {
        state,
        network: "azure",
        prerouting,
      });
      assert.deepEqual(found.veths, ["azvleft"]);
      assert.deepEqual(vethsOf(found.rules), ["azvleft", "azvgone"]);
      assert.equal(found.rules.length, 10);
    },
  );
  await t.step(
    "DEL without a record: the gone veth's that name its address or MAC",
    () => {
      for (
        const only of [
          { ips: ["10.0.0.8"], macs: [] },
          { ips: [], macs: ["2:0:0:0:0:8"] },
        ]
      ) {
        const found = findLeftovers(host, { state, prerouting, only });
        assert.deepEqual(
          vethsOf(found.rules),
          ["azvgone"],
          JSON.stringify(only),
        );
        assert.equal(found.rules.length, 5);
      }
      // A veth still there is its DEL's own to delete first; others' are not
      // this DEL's.
      for (
        const only of [
          { ips: ["10.0.0.6"], macs: ["02:00:00:00:00:06"] },
          { ips: ["10.0.0.9"], macs: ["02:00:00:00:00:09"] },
        ]
      ) {
        const found = findLeftovers(host, { state, prerouting, only });
        assert.deepEqual(found.rules, [], JSON.stringify(only));
      }
    },
  );
  await t.step(
    "removed, they are gone from the table; the others stay",
    async () => {
      const found = findLeftovers(host, {
        state,
        network: "azure",
        prerouting,
      });
      assert.deepEqual(
        await removeLeftovers({ host, ebtables: eb }, found),
        [],
      );
      assert.deepEqual(
        vethsOf(
          (await eb.list("PREROUTING")).map((l) => ({ args: l.split(" ") })),
        ),
        ["azvkept", "azvfree"],
      );
      assert.equal(fake.rules.length, 10);
    },
  );
});

Deno.test("transparentVethClaim() tells a transparent network's veths from another's", async (t) => {
  const host = new FakeKernel().hostNs;
  const subnet = "10.0.0.0/24";
  const cases: [string, string[], "subnet" | "unrouted" | undefined][] = [
    ["no route yet", [], "unrouted"],
    ["only the link-local prefix", ["fe80::/64"], "unrouted"],
    ["the pod's /32", ["10.0.0.5/32", "fe80::/64"], "subnet"],
    ["the pod's /32 and /128", ["10.0.0.5/32", "fd00::5/128"], "subnet"],
    ["another subnet's pod", ["10.9.0.5/32"], undefined],
    ["one of each", ["10.0.0.5/32", "10.9.0.5/32"], undefined],
    ["an IPv6 pod address only", ["fd00::5/128"], undefined],
  ];
  for (const [i, [what, dsts, want]] of cases.entries()) {
    await t.step(what, () => {
      const link = `azv${i}`;
      host.addLink(link, { kind: "veth" });
      for (const dst of dsts) host.routeReplace({ dst, link });
      assert.equal(transparentVethClaim(host, { link, subnet }), want);
    });
  }
});
