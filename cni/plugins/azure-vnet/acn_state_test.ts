import assert from "node:assert/strict";
import { parseIpamState } from "@vnet/ipam";
import {
  ACN_CONTAINER_PREFIX,
  convertAcnState,
  findAttachment,
  isAcnIpamDocument,
  isAcnNetworkDocument,
  legacyEndpointId,
  looksLikeAcnText,
} from "./acn_state.ts";
import { parseState } from "./state.ts";

/** The Go plugin v0.91's node with three pods (tests/testdata/acn-v0.91-node). */
const FIXTURE = new URL(
  "../../../tests/testdata/acn-v0.91-node/",
  import.meta.url,
);

function fixtureText(name: string): string {
  return Deno.readTextFileSync(new URL(name, FIXTURE));
}

function fixtureJson(name: string): unknown {
  return JSON.parse(fixtureText(name));
}

/** pods.tsv: container ID, IP, endpoint ID, host veth, pod MAC per pod. */
function fixturePods(dir = ""): {
  containerId: string;
  ip: string;
  endpointId: string;
  hostVeth: string;
  podMac: string;
}[] {
  const [, ...rows] = fixtureText(`${dir}pods.tsv`).trim().split("\n");
  return rows.map((r) => r.split("\t")).filter((c) => c[4] !== "-").map((
    c,
  ) => ({
    containerId: c[2] ?? "",
    ip: c[3] ?? "",
    endpointId: c[4] ?? "",
    hostVeth: c[5] ?? "",
    podMac: c[8] ?? "",
  }));
}

/** node-links.json as the host link facts adoption reads. */
function fixtureLinks(): { name: string; mac: string; mtu: number }[] {
  return (fixtureJson("node-links.json") as {
    ifname: string;
    address: string;
    mtu: number;
  }[]).map((l) => ({ name: l.ifname, mac: l.address, mtu: l.mtu }));
}

Deno.test("isAcn*Document() and looksLikeAcnText() tell the Go files from ours", () => {
  const ours = { version: 1, networks: {}, endpoints: {} };
  assert.deepEqual(
    [
      isAcnNetworkDocument(fixtureJson("azure-vnet.json")),
      isAcnIpamDocument(fixtureJson("azure-vnet-ipam.json")),
      looksLikeAcnText(fixtureText("azure-vnet.json")),
      looksLikeAcnText(fixtureText("azure-vnet-ipam.json")),
    ],
    [true, true, true, true],
  );
  assert.deepEqual(
    [
      isAcnNetworkDocument(ours),
      isAcnIpamDocument(fixtureJson("azure-vnet.json")),
      looksLikeAcnText(JSON.stringify(ours, null, 2)),
      looksLikeAcnText("{not json"),
    ],
    [false, false, false, false],
  );
});

Deno.test("convertAcnState() converts the v0.91 node's files, keeping every pod", () => {
  const out = convertAcnState({
    network: fixtureJson("azure-vnet.json"),
    ipam: fixtureJson("azure-vnet-ipam.json"),
    links: fixtureLinks(),
  });
  assert.deepEqual(out.report.converted, { network: true, ipam: true });
  assert.equal(out.report.version, "v0.91");
  assert.deepEqual(out.report.notes, []);
  assert.deepEqual(out.state.networks.azure, {
    name: "azure",
    mode: "bridge",
    bridge: "azure0",
    master: "eth0",
    masterMac: "00:0d:3a:99:00:04",
    masterMtu: 1500,
    subnet: "10.99.0.0/24",
    gateway: "10.99.0.1",
    primaryIp: "10.99.0.4",
    savedAddrs: ["10.99.0.4/24"],
    savedRoutes: [{
      dst: "0.0.0.0/0",
      gw: "10.99.0.1",
      table: 254,
      protocol: 3,
    }],
    createdAt: "2026-12-06T05:01:19.430382236Z",
  });
  const pods = fixturePods();
  assert.equal(pods.length, 3);
  assert.equal(Object.keys(out.state.endpoints).length, 3);
  const links = new Map(fixtureLinks().map((l) => [l.name, l]));
  for (const pod of pods) {
    const key = `${ACN_CONTAINER_PREFIX}${pod.endpointId}/eth0`;
    const ep = out.state.endpoints[key];
    assert.ok(ep, key);
    assert.equal(ep.hostVeth, pod.hostVeth);
    assert.equal(ep.podMac, pod.podMac);
    assert.equal(ep.hostMac, links.get(pod.hostVeth)?.mac);
    assert.deepEqual(ep.addresses, [pod.ip]);
    assert.deepEqual(ep.acn, { endpointId: pod.endpointId, version: "v0.91" });
    assert.equal(ep.netns, "");
    assert.deepEqual(ep.result.ips, [{
      address: pod.ip,
      gateway: "10.99.0.1",
      interface: 1,
    }]);
    assert.deepEqual(ep.result.routes, [{ dst: "0.0.0.0/0", gw: "10.99.0.1" }]);
    // A runtime call with the full container ID finds the adopted record.
    assert.equal(
      findAttachment(out.state, {
        containerId: pod.containerId,
        ifName: "eth0",
        network: "azure",
      })?.key,
      key,
    );
    assert.equal(legacyEndpointId(pod.containerId, "eth0"), pod.endpointId);
  }
  const pool = out.ipam?.pools["10.99.0.0/24"];
  assert.ok(pool);
  assert.equal(pool.gateway, "10.99.0.1");
  assert.equal(pool.ifName, "eth0");
  assert.equal(pool.macAddress, "000d3a990004");
  assert.deepEqual(pool.primaryIps, ["10.99.0.4"]);
  assert.deepEqual(Object.keys(pool.addresses), [
    "10.99.0.5",
    "10.99.0.6",
    "10.99.0.7",
    "10.99.0.8",
    "10.99.0.9",
    "10.99.0.10",
    "10.99.0.11",
    "10.99.0.12",
  ]);
  for (const pod of pods) {
    assert.deepEqual(pool.addresses[pod.ip.split("/")[0] ?? ""], {
      containerId: `${ACN_CONTAINER_PREFIX}${pod.endpointId}`,
      ifName: "eth0",
      network: "azure",
    });
  }
  for (const free of ["10.99.0.5", "10.99.0.6", "10.99.0.7", "10.99.0.9"]) {
    assert.deepEqual(pool.addresses[free], {});
  }
  assert.ok(out.ipamChanged);
  // Both documents are valid state of ours.
  const path = "/x";
  assert.deepEqual(
    parseState(JSON.parse(JSON.stringify(out.state)), path),
    out.state,
  );
  assert.deepEqual(
    parseIpamState(JSON.parse(JSON.stringify(out.ipam)), path),
    out.ipam,
  );
});

Deno.test("findAttachment() matches adopted records by the Go endpoint ID only", () => {
  const { state } = convertAcnState({
    network: fixtureJson("azure-vnet.json"),
    ipam: undefined,
  });
  const id = "acnpod148c2cc600dd2d78bf716af8b04f5fad0ae76f74ab9d8cc8ceb524ee37";
  const cases = [
    { name: "other ifname", containerId: id, ifName: "eth1", network: "azure" },
    { name: "other network", containerId: id, ifName: "eth0", network: "x" },
    {
      name: "other prefix",
      containerId: "acnpod158c2cc6",
      ifName: "eth0",
      network: "azure",
    },
  ];
  for (const c of cases) {
    assert.equal(findAttachment(state, c), undefined, c.name);
  }
  // A record of our own wins over an adopted one sharing the Go ID.
  state.endpoints[`${id}/eth0`] = {
    ...state.endpoints["acn:acnpod14-eth0/eth0"] ??
      assert.fail("no adopted record"),
    containerId: id,
  };
  delete state.endpoints[`${id}/eth0`]?.acn;
  assert.equal(
    findAttachment(state, { containerId: id, ifName: "eth0", network: "azure" })
      ?.key,
    `${id}/eth0`,
  );
});

Deno.test("findAttachment() finds an adopted record with a full container ID by that ID only", () => {
  const { state } = convertAcnState({
    network: fixtureJson("azure-vnet.json"),
    ipam: undefined,
  });
  // A later Go version kept the full ID: the record is keyed by it.
  const id = "acnpod148c2cc600dd2d78bf716af8b04f5fad0ae76f74ab9d8cc8ceb524ee37";
  const adopted = state.endpoints["acn:acnpod14-eth0/eth0"] ??
    assert.fail("no adopted record");
  delete state.endpoints["acn:acnpod14-eth0/eth0"];
  state.endpoints[`${id}/eth0`] = { ...adopted, containerId: id };
  const twin = `acnpod14${"0".repeat(56)}`;
  assert.equal(
    findAttachment(state, {
      containerId: twin,
      ifName: "eth0",
      network: "azure",
    }),
    undefined,
  );
  assert.deepEqual(
    findAttachment(state, {
      containerId: id,
      ifName: "eth0",
      network: "azure",
    }),
    { key: `${id}/eth0`, record: state.endpoints[`${id}/eth0`], byGoId: false },
  );
  // Without the full ID, a match by the Go endpoint ID says so.
  const byGoId = findAttachment(state, {
    containerId: "acnpod2d65bac740cf",
    ifName: "eth0",
    network: "azure",
  });
  assert.equal(byGoId?.key, "acn:acnpod2d-eth0/eth0");
  assert.ok(byGoId.byGoId);
});

Deno.test("convertAcnState() holds an address the Go IPAM file freed under a live pod", () => {
  // The collision run: the endpoint of pod 1 uses 10.99.0.6, but the
  // rollbacks of the failed ADDs freed it in the IPAM file.
  const out = convertAcnState({
    network: fixtureJson("collision-acn-pod-ids/azure-vnet.json"),
    ipam: fixtureJson("collision-acn-pod-ids/azure-vnet-ipam.json"),
  });
  const [pod] = fixturePods("collision-acn-pod-ids/");
  assert.equal(pod?.endpointId, "acn-pod--eth0");
  assert.deepEqual(out.ipam?.pools["10.99.0.0/24"]?.addresses["10.99.0.6"], {
    containerId: "acn:acn-pod--eth0",
    ifName: "eth0",
    network: "azure",
  });
  assert.deepEqual(out.report.notes, [
    "10.99.0.6 (endpoint acn-pod--eth0) was free in the IPAM file: now held",
  ]);
  // Without host links, the host veth's MAC and MTU are unknown.
  assert.equal(out.state.endpoints["acn:acn-pod--eth0/eth0"]?.hostMac, "");
  assert.equal(out.state.endpoints["acn:acn-pod--eth0/eth0"]?.mtu, 1500);
});

Deno.test("convertAcnState() finishes an interrupted conversion (IPAM file already ours)", () => {
  const first = convertAcnState({
    network: fixtureJson("azure-vnet.json"),
    ipam: fixtureJson("azure-vnet-ipam.json"),
  });
  const again = convertAcnState({
    network: fixtureJson("azure-vnet.json"),
    ipam: JSON.parse(JSON.stringify(first.ipam)),
  });
  assert.deepEqual(again.report.converted, { network: true, ipam: false });
  assert.ok(!again.ipamChanged);
  assert.deepEqual(again.ipam, first.ipam);
  assert.deepEqual(again.state, first.state);
  // And the other way round: the network file ours, the IPAM file Go's.
  const rest = convertAcnState({
    network: JSON.parse(JSON.stringify(first.state)),
    ipam: fixtureJson("azure-vnet-ipam.json"),
  });
  assert.deepEqual(rest.report.converted, { network: false, ipam: true });
  assert.deepEqual(rest.ipam, first.ipam);
});

Deno.test("convertAcnState() keeps an unrecorded Go reservation held and says so", () => {
  const ipam = fixtureJson("azure-vnet-ipam.json") as {
    IPAM: { AddressSpaces: { local: { Pools: Record<string, unknown> } } };
  };
  const pool = ipam.IPAM.AddressSpaces.local.Pools["10.99.0.0/24"] as {
    Addresses: Record<string, unknown>;
  };
  pool.Addresses["10.99.0.5"] = {
    ID: "deadbeef-eth0",
    Addr: "10.99.0.5",
    InUse: true,
  };
  const out = convertAcnState({
    network: fixtureJson("azure-vnet.json"),
    ipam,
  });
  assert.deepEqual(out.ipam?.pools["10.99.0.0/24"]?.addresses["10.99.0.5"], {
    containerId: "acn:deadbeef-eth0",
    ifName: "eth0",
    network: "azure",
  });
  assert.match(out.report.notes.join("\n"), /10\.99\.0\.5 is held by/);
});

Deno.test("convertAcnState() refuses what it cannot adopt with code 102", async (t) => {
  const tunnel = fixtureJson("azure-vnet.json") as {
    Network: {
      ExternalInterfaces: { eth0: { Networks: { azure: { Mode: string } } } };
    };
  };
  tunnel.Network.ExternalInterfaces.eth0.Networks.azure.Mode = "tunnel";
  const badMac = JSON.parse(
    fixtureText("azure-vnet.json").replace('"xiapKKlD"', '"xia"'),
  );
  const cases = [
    { name: "tunnel mode", network: tunnel, ipam: undefined, re: /tunnel/ },
    { name: "bad MAC", network: badMac, ipam: undefined, re: /MAC/ },
    {
      name: "IPAM pools not an object",
      network: undefined,
      ipam: { IPAM: { AddressSpaces: { local: { Pools: [] } } } },
      re: /no pools/,
    },
    {
      name: "damaged state of ours",
      network: { version: 1, networks: [] },
      ipam: fixtureJson("azure-vnet-ipam.json"),
      re: /corrupt/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      assert.throws(() => convertAcnState(c), {
        name: "CniError",
        code: 102,
        message: c.re,
      });
    });
  }
});
