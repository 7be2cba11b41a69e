import assert from "node:assert/strict";
import type { CmdArgs } from "@vnet/cni";
import { convertResult, parseCniArgs, redactUrl } from "@vnet/cni";
import { FakeStore } from "../../_fake_store.ts";
import {
  FakeWireserver,
  makeArgs,
  nmagentXml,
  xmlResponse,
} from "../../_testing.ts";
import type { XmlNic } from "../../_testing.ts";
import { createIpamHandlers } from "./handlers.ts";
import type { IpamEngineOptions } from "@vnet/ipam";
import { readIpamState } from "@vnet/ipam";
import { runThroughSkel } from "../../../tests/_support/skel.ts";

const MAC = "000d3af9dca6";
const LINKS = [{ name: "eth0", mac: MAC }];

function nicWith(addresses: string[]): XmlNic[] {
  return [{
    mac: "000D3AF9DCA6",
    subnets: [{ prefix: "10.240.0.0/16", primary: "10.240.0.4", addresses }],
  }];
}

function azureConf(url: string, extra: Record<string, unknown> = {}) {
  return {
    ipam: { type: "azure-vnet-ipam", queryUrl: url, ...extra },
  };
}

/** Engine options for tests: fixed links, a settable clock, fast failures. */
function testOptions(
  clock: { t: number },
  extra: IpamEngineOptions = {},
): IpamEngineOptions {
  return {
    hostMacs: () => LINKS,
    now: () => clock.t,
    bootId: () => "boot-1",
    sourceTimeoutMs: 300,
    sourceRetries: 0,
    sleep: () => Promise.resolve(),
    ...extra,
  };
}

function add(h: ReturnType<typeof createIpamHandlers>, a: CmdArgs) {
  return h.cmdAdd(a);
}

Deno.test("cmdAdd() returns the abbreviated result from the wireserver", async () => {
  await using ws = new FakeWireserver(() =>
    xmlResponse(nmagentXml(nicWith(["10.240.0.6", "10.240.0.5"])))
  );
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions({ t: 1000 }, { store }));
  const r = await add(h, makeArgs("ADD", azureConf(ws.queryUrl)));
  assert.deepEqual(r, {
    cniVersion: "1.0.0",
    ips: [{ address: "10.240.0.5/16", gateway: "10.240.0.1" }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.240.0.1" }],
    dns: { nameservers: ["168.63.129.16"] },
  });
  const pool = store.state?.pools["10.240.0.0/16"];
  assert.equal(pool?.ifName, "eth0");
  assert.deepEqual(pool?.primaryIps, ["10.240.0.4"]);
  assert.deepEqual(pool?.addresses["10.240.0.5"], {
    containerId: "c1",
    ifName: "eth0",
    network: "azure",
  });
  assert.equal(store.state?.lastRefresh, 1000);
  assert.equal(store.state?.bootId, "boot-1");
});

Deno.test("cmdAdd() returns both families from a dual-stack wireserver, and they convert down to 0.2.0", async (t) => {
  await using ws = new FakeWireserver(() =>
    xmlResponse(nmagentXml([{
      mac: "000D3AF9DCA6",
      subnets: [
        {
          prefix: "10.240.0.0/16",
          primary: "10.240.0.4",
          addresses: ["10.240.0.5"],
        },
        {
          prefix: "fd00:db8:deca:deed::/64",
          primary: "fd00:db8:deca:deed::4",
          addresses: ["fd00:db8:deca:deed::6", "fd00:db8:deca:deed::5"],
        },
      ],
    }]))
  );
  const h = createIpamHandlers(
    testOptions({ t: 1000 }, { store: new FakeStore() }),
  );
  const r = await add(h, makeArgs("ADD", azureConf(ws.queryUrl)));
  await t.step("the result carries both", () => {
    assert.deepEqual(r.ips, [
      { address: "10.240.0.5/16", gateway: "10.240.0.1" },
      { address: "fd00:db8:deca:deed::5/64", gateway: "fd00:db8:deca:deed::1" },
    ]);
    assert.deepEqual(r.routes, [
      { dst: "0.0.0.0/0", gw: "10.240.0.1" },
      { dst: "::/0", gw: "fd00:db8:deca:deed::1" },
    ]);
  });
  await t.step("0.3.1 tags each with its version", () => {
    const wire = convertResult(r, "0.3.1") as { ips: { version: string }[] };
    assert.deepEqual(wire.ips.map((ip) => ip.version), ["4", "6"]);
  });
  await t.step("0.2.0 splits them into ip4 and ip6 with their routes", () => {
    const wire = convertResult(r, "0.2.0");
    assert.deepEqual(wire.ip6, {
      ip: "fd00:db8:deca:deed::5/64",
      gateway: "fd00:db8:deca:deed::1",
      routes: [{ dst: "::/0", gw: "fd00:db8:deca:deed::1" }],
    });
    assert.equal((wire.ip4 as { ip: string }).ip, "10.240.0.5/16");
  });
});

Deno.test("cmdAdd() uses config dns over the Azure default", async () => {
  await using ws = new FakeWireserver(() =>
    xmlResponse(nmagentXml(nicWith(["10.240.0.5"])))
  );
  const h = createIpamHandlers(
    testOptions({ t: 1 }, { store: new FakeStore() }),
  );
  const r = await add(
    h,
    makeArgs("ADD", {
      dns: { nameservers: ["10.0.0.10"], search: ["svc.local"] },
      ...azureConf(ws.queryUrl),
    }),
  );
  assert.deepEqual(r.dns, {
    nameservers: ["10.0.0.10"],
    search: ["svc.local"],
  });
});

Deno.test("cmdAdd() refreshes no more often than queryInterval", async (t) => {
  let addresses = ["10.240.0.5", "10.240.0.6"];
  await using ws = new FakeWireserver(() =>
    xmlResponse(nmagentXml(nicWith(addresses)))
  );
  const stateDir = await Deno.makeTempDir();
  const clock = { t: 10_000 };
  const conf = azureConf(ws.queryUrl, { queryInterval: "10" });
  // Two engine instances sharing the state dir stand for two processes.
  const first = createIpamHandlers(testOptions(clock, { stateDir }));
  const second = createIpamHandlers(testOptions(clock, { stateDir }));

  await t.step("the first ADD queries the source", async () => {
    await add(first, makeArgs("ADD", conf, { containerId: "a" }));
    assert.equal(ws.hits, 1);
  });
  await t.step("a second process within the interval does not", async () => {
    addresses = ["10.240.0.5", "10.240.0.6", "10.240.0.7", "10.240.0.8"];
    clock.t += 9_999;
    const r = await add(second, makeArgs("ADD", conf, { containerId: "b" }));
    assert.equal(ws.hits, 1);
    assert.equal(r.ips?.[0]?.address, "10.240.0.6/16");
  });
  await t.step(
    "after the interval it does, and new addresses appear",
    async () => {
      clock.t += 1;
      const r = await add(second, makeArgs("ADD", conf, { containerId: "c" }));
      assert.equal(ws.hits, 2);
      assert.equal(r.ips?.[0]?.address, "10.240.0.7/16");
      const state = await readIpamState(`${stateDir}/azure-vnet-ipam.json`);
      assert.equal(state?.lastRefresh, 20_000);
    },
  );
  await t.step(
    "a changed boot id forces a refresh, keeping reservations",
    async () => {
      const rebooted = createIpamHandlers(
        testOptions(clock, { stateDir, bootId: () => "boot-2" }),
      );
      const r = await add(
        rebooted,
        makeArgs("ADD", conf, { containerId: "d" }),
      );
      assert.equal(ws.hits, 3);
      assert.equal(r.ips?.[0]?.address, "10.240.0.8/16");
      const again = await add(
        rebooted,
        makeArgs("ADD", conf, { containerId: "a" }),
      );
      assert.equal(again.ips?.[0]?.address, "10.240.0.5/16");
    },
  );
  await Deno.remove(stateDir, { recursive: true });
});

Deno.test("cmdAdd() is idempotent for (container id, ifname)", async () => {
  await using ws = new FakeWireserver(() =>
    xmlResponse(nmagentXml(nicWith(["10.240.0.5", "10.240.0.6"])))
  );
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions({ t: 1 }, { store }));
  const conf = azureConf(ws.queryUrl);
  const a = await add(h, makeArgs("ADD", conf));
  const b = await add(h, makeArgs("ADD", conf));
  assert.deepEqual(a, b);
  const c = await add(h, makeArgs("ADD", conf, { ifName: "eth1" }));
  assert.equal(c.ips?.[0]?.address, "10.240.0.6/16");
});

Deno.test("cmdAdd() honours a requested address from each source", async (t) => {
  await using ws = new FakeWireserver(() =>
    xmlResponse(
      nmagentXml(
        nicWith(["10.240.0.5", "10.240.0.6", "10.240.0.7", "10.240.0.8"]),
      ),
    )
  );
  const h = createIpamHandlers(
    testOptions({ t: 1 }, { store: new FakeStore() }),
  );
  const cases: [string, CmdArgs, string][] = [
    [
      "CNI_ARGS IP=",
      makeArgs("ADD", azureConf(ws.queryUrl), {
        containerId: "a",
        ips: ["10.240.0.8"],
      }),
      "10.240.0.8",
    ],
    [
      "runtimeConfig.ips",
      makeArgs("ADD", {
        runtimeConfig: { ips: ["10.240.0.7/16"] },
        ...azureConf(ws.queryUrl),
      }, { containerId: "b" }),
      "10.240.0.7",
    ],
    [
      "ipam.ipAddress",
      makeArgs("ADD", azureConf(ws.queryUrl, { ipAddress: "10.240.0.6" }), {
        containerId: "c",
      }),
      "10.240.0.6",
    ],
  ];
  for (const [name, args, ip] of cases) {
    await t.step(name, async () => {
      const r = await add(h, args);
      assert.equal(r.ips?.[0]?.address, `${ip}/16`);
    });
  }
  await t.step("a taken address fails with 107 naming it", async () => {
    await assert.rejects(
      add(
        h,
        makeArgs("ADD", azureConf(ws.queryUrl), {
          containerId: "d",
          ips: ["10.240.0.8"],
        }),
      ),
      {
        name: "CniError",
        code: 107,
        message: /"10.240.0.8": in use by container "a"/,
      },
    );
  });
});

Deno.test("cmdAdd() fails with 100 naming the subnet when exhausted", async () => {
  await using ws = new FakeWireserver(() =>
    xmlResponse(nmagentXml(nicWith(["10.240.0.5", "10.240.0.6"])))
  );
  const h = createIpamHandlers(
    testOptions({ t: 1 }, { store: new FakeStore() }),
  );
  const conf = azureConf(ws.queryUrl);
  await add(h, makeArgs("ADD", conf, { containerId: "a" }));
  await add(h, makeArgs("ADD", conf, { containerId: "b" }));
  await assert.rejects(add(h, makeArgs("ADD", conf, { containerId: "c" })), {
    name: "CniError",
    code: 100,
    message: "No free address in subnet 10.240.0.0/16: 2 of 2 in use",
  });
});

Deno.test("cmdAdd() on a new node with a failing source", async (t) => {
  const cases: [string, () => Response | Promise<Response>, number, RegExp][] =
    [
      [
        "HTTP 500",
        () => xmlResponse("<Error><Code>InternalError</Code></Error>", 500),
        11,
        /500/,
      ],
      ["malformed XML", () => xmlResponse("<Interfaces><Interface"), 11, /./],
      ["HTTP 404", () => new Response("no", { status: 404 }), 101, /404/],
      [
        "timeout",
        async () => {
          await new Promise((r) => setTimeout(r, 600));
          return xmlResponse("<Interfaces/>");
        },
        11,
        /./,
      ],
    ];
  for (const [name, handler, code, detail] of cases) {
    await t.step(`${name} fails with ${code} naming the URL`, async () => {
      await using ws = new FakeWireserver(handler);
      const store = new FakeStore();
      const h = createIpamHandlers(testOptions({ t: 1 }, { store }));
      const err = await add(h, makeArgs("ADD", azureConf(ws.queryUrl))).then(
        () => assert.fail("ADD succeeded"),
        (e: unknown) =>
          e as {
            name: string;
            code: number;
            message: string;
            details?: string;
          },
      );
      assert.equal(err.name, "CniError");
      assert.equal(err.code, code);
      // Named with its query values redacted (#12).
      assert.ok(err.message.includes(redactUrl(ws.queryUrl)), err.message);
      assert.match(err.message, /\/machine\/plugins\?comp=REDACTED/);
      assert.match(err.details ?? "", detail);
      assert.equal(store.state, undefined);
    });
  }
});

Deno.test("cmdAdd() serves from state when a due refresh fails", async () => {
  let fail = false;
  await using ws = new FakeWireserver(() =>
    fail
      ? xmlResponse("<Interfaces", 200)
      : xmlResponse(nmagentXml(nicWith(["10.240.0.5", "10.240.0.6"])))
  );
  const clock = { t: 1 };
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions(clock, { store }));
  const conf = azureConf(ws.queryUrl);
  await add(h, makeArgs("ADD", conf, { containerId: "a" }));
  fail = true;
  clock.t += 60_000;
  const r = await add(h, makeArgs("ADD", conf, { containerId: "b" }));
  assert.equal(r.ips?.[0]?.address, "10.240.0.6/16");
  assert.equal(ws.hits, 2);
  assert.equal(store.state?.lastRefresh, 1);
});

Deno.test("cmdAdd() with an empty list or MAC mismatch finds no pool", async (t) => {
  const docs: [string, string][] = [
    ["empty interface list", "<Interfaces></Interfaces>"],
    [
      "MAC mismatch",
      nmagentXml([{
        mac: "AABBCCDDEEFF",
        subnets: [{ prefix: "10.9.0.0/24", addresses: ["10.9.0.5"] }],
      }]),
    ],
  ];
  for (const [name, doc] of docs) {
    await t.step(name, async () => {
      await using ws = new FakeWireserver(() => xmlResponse(doc));
      const h = createIpamHandlers(
        testOptions({ t: 1 }, { store: new FakeStore() }),
      );
      await assert.rejects(add(h, makeArgs("ADD", azureConf(ws.queryUrl))), {
        name: "CniError",
        code: 100,
        message: /no address pool/,
        details: /reported no subnet on a NIC matching any host link by MAC/,
      });
    });
  }
});

Deno.test("cmdAdd() follows the NIC losing a held address", async () => {
  let addresses = ["10.240.0.5", "10.240.0.6"];
  await using ws = new FakeWireserver(() =>
    xmlResponse(nmagentXml(nicWith(addresses)))
  );
  const clock = { t: 1 };
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions(clock, { store }));
  const conf = azureConf(ws.queryUrl, { queryInterval: 0 });
  await add(h, makeArgs("ADD", conf, { containerId: "a" }));
  addresses = ["10.240.0.6"];
  await add(h, makeArgs("ADD", conf, { containerId: "b" }));
  assert.deepEqual(store.state?.pools["10.240.0.0/16"]?.addresses, {
    "10.240.0.5": {
      containerId: "a",
      ifName: "eth0",
      network: "azure",
      stale: true,
    },
    "10.240.0.6": { containerId: "b", ifName: "eth0", network: "azure" },
  });
  await h.cmdDel(makeArgs("DEL", conf, { containerId: "a" }));
  assert.deepEqual(
    Object.keys(store.state?.pools["10.240.0.0/16"]?.addresses ?? {}),
    ["10.240.0.6"],
  );
});

Deno.test("cmdDel() is idempotent and needs no state", async () => {
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions({ t: 1 }, { store }));
  const conf = {
    ipam: {
      type: "azure-vnet-ipam",
      environment: "static",
      subnet: "10.1.0.0/24",
      addresses: ["10.1.0.5"],
    },
  };
  await h.cmdDel(makeArgs("DEL", conf));
  assert.equal(store.writes, 0);
  await add(h, makeArgs("ADD", conf));
  await h.cmdDel(makeArgs("DEL", conf));
  await h.cmdDel(makeArgs("DEL", conf));
  assert.deepEqual(store.state?.pools["10.1.0.0/24"]?.addresses, {
    "10.1.0.5": {},
  });
});

Deno.test("static environment allocates without network and omits dns", async () => {
  const store = new FakeStore();
  let fetched = 0;
  const h = createIpamHandlers(testOptions({ t: 1 }, {
    store,
    fetch: () => {
      fetched++;
      return Promise.reject(new Error("no network"));
    },
  }));
  const conf = {
    ipam: {
      type: "azure-vnet-ipam",
      environment: "static",
      subnet: "10.1.0.0/24",
      primaryIp: "10.1.0.4",
      addresses: ["10.1.0.4", "10.1.0.6", "10.1.0.5"],
    },
  };
  const r = await add(h, makeArgs("ADD", conf));
  assert.deepEqual(r, {
    cniVersion: "1.0.0",
    ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1" }],
    routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
  });
  assert.equal(fetched, 0);
});

Deno.test("cmdCheck() verifies the reservation", async () => {
  const h = createIpamHandlers(
    testOptions({ t: 1 }, { store: new FakeStore() }),
  );
  const ipam = {
    type: "azure-vnet-ipam",
    environment: "static",
    subnet: "10.1.0.0/24",
    addresses: ["10.1.0.5"],
  };
  await assert.rejects(
    h.cmdCheck?.(makeArgs("CHECK", { ipam })) ?? Promise.resolve(),
    {
      name: "CniError",
      code: 106,
      message: /No address reserved for container "c1" interface "eth0"/,
    },
  );
  await add(h, makeArgs("ADD", { ipam }));
  await h.cmdCheck?.(makeArgs("CHECK", { ipam }));
  await h.cmdCheck?.(
    makeArgs("CHECK", {
      ipam,
      prevResult: { ips: [{ address: "10.1.0.5/24" }] },
    }),
  );
  await assert.rejects(
    h.cmdCheck?.(
      makeArgs("CHECK", {
        ipam,
        prevResult: { ips: [{ address: "10.1.0.9/24" }] },
      }),
    ) ?? Promise.resolve(),
    { name: "CniError", code: 106, message: /"10.1.0.5" .* not in prevResult/ },
  );
});

Deno.test("cmdStatus() reports 50 when unreachable or exhausted", async (t) => {
  await t.step("unreachable source and no state", async () => {
    await using ws = new FakeWireserver(() =>
      new Response("x", { status: 503 })
    );
    const h = createIpamHandlers(
      testOptions({ t: 1 }, { store: new FakeStore() }),
    );
    await assert.rejects(
      h.cmdStatus?.(makeArgs("STATUS", azureConf(ws.queryUrl))) ??
        Promise.resolve(),
      {
        name: "CniError",
        code: 50,
        message: /unreachable and no IPAM state exists/,
      },
    );
  });
  await t.step("free address: ok; exhausted: 50", async () => {
    await using ws = new FakeWireserver(() =>
      xmlResponse(nmagentXml(nicWith(["10.240.0.5"])))
    );
    const h = createIpamHandlers(
      testOptions({ t: 1 }, { store: new FakeStore() }),
    );
    const conf = azureConf(ws.queryUrl);
    await h.cmdStatus?.(makeArgs("STATUS", conf));
    await add(h, makeArgs("ADD", conf));
    await assert.rejects(
      h.cmdStatus?.(makeArgs("STATUS", conf)) ?? Promise.resolve(),
      {
        name: "CniError",
        code: 50,
        message: /subnet 10.240.0.0\/16: 1 of 1 in use/,
      },
    );
  });
});

const GC_IPAM = {
  type: "azure-vnet-ipam",
  environment: "static",
  subnet: "10.1.0.0/24",
  addresses: ["10.1.0.5", "10.1.0.6"],
};

/** Handlers over a fake store where containers `a` and `b` hold addresses. */
async function twoHeld() {
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions({ t: 1 }, { store }));
  const ipam = GC_IPAM;
  for (const containerId of ["a", "b"]) {
    await add(h, makeArgs("ADD", { ipam }, { containerId }));
  }
  return { store, h, ipam };
}

Deno.test("cmdGc() releases attachments not listed as valid", async () => {
  const { store, h, ipam } = await twoHeld();
  // Without the list, GC is refused (7) and changes nothing (#12).
  await assert.rejects(
    () => h.cmdGc?.(makeArgs("GC", { ipam })) ?? Promise.resolve(),
    {
      name: "CniError",
      code: 7,
      message: /cni\.dev\/valid-attachments/,
    },
  );
  assert.equal(
    Object.values(store.state?.pools["10.1.0.0/24"]?.addresses ?? {}).filter((
      r,
    ) => r.containerId).length,
    2,
  );
  await h.cmdGc?.(
    makeArgs("GC", {
      ipam,
      "cni.dev/valid-attachments": [{ containerID: "b", ifname: "eth0" }],
    }),
  );
  assert.deepEqual(store.state?.pools["10.1.0.0/24"]?.addresses, {
    "10.1.0.5": {},
    "10.1.0.6": { containerId: "b", ifName: "eth0", network: "azure" },
  });
});

Deno.test("GC through runPlugin() takes a null cni.dev/valid-attachments as none valid (libcni's nil slice)", async () => {
  const { store, h, ipam } = await twoHeld();
  const gc = await runThroughSkel(h, {
    name: "azure-vnet-ipam",
    env: { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
    config: {
      cniVersion: "1.1.0",
      name: "azure",
      type: "azure-vnet-ipam",
      ipam,
      "cni.dev/valid-attachments": null,
      "cni.dev/attachments": null,
    },
  });
  assert.deepEqual(gc, { code: 0, stdout: "" });
  assert.deepEqual(store.state?.pools["10.1.0.0/24"]?.addresses, {
    "10.1.0.5": {},
    "10.1.0.6": {},
  });
});

Deno.test("cmdGc() of one network leaves other networks' reservations alone", async () => {
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions({ t: 1 }, { store }));
  const ipam = {
    type: "azure-vnet-ipam",
    environment: "static",
    subnet: "10.1.0.0/24",
    addresses: ["10.1.0.5", "10.1.0.6", "10.1.0.7"],
  };
  await add(h, makeArgs("ADD", { name: "blue", ipam }, { containerId: "a" }));
  await add(h, makeArgs("ADD", { name: "red", ipam }, { containerId: "b" }));
  // A reservation written before records carried their network.
  const pool = store.state?.pools["10.1.0.0/24"];
  assert.ok(pool !== undefined);
  pool.addresses["10.1.0.7"] = { containerId: "old", ifName: "eth0" };
  await h.cmdGc?.(
    makeArgs("GC", {
      name: "blue",
      ipam,
      "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }],
    }),
  );
  assert.deepEqual(store.state?.pools["10.1.0.0/24"]?.addresses, {
    "10.1.0.5": { containerId: "a", ifName: "eth0", network: "blue" },
    "10.1.0.6": { containerId: "b", ifName: "eth0", network: "red" },
    "10.1.0.7": {},
  });
  await h.cmdGc?.(
    makeArgs("GC", { name: "red", ipam, "cni.dev/valid-attachments": [] }),
  );
  assert.deepEqual(store.state?.pools["10.1.0.0/24"]?.addresses, {
    "10.1.0.5": { containerId: "a", ifName: "eth0", network: "blue" },
    "10.1.0.6": {},
    "10.1.0.7": {},
  });
});

Deno.test("cmdAdd() reports a corrupt state file with 102", async () => {
  const stateDir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${stateDir}/azure-vnet-ipam.json`, '{"version":7}');
  const h = createIpamHandlers(testOptions({ t: 1 }, { stateDir }));
  const ipam = {
    type: "azure-vnet-ipam",
    environment: "static",
    subnet: "10.1.0.0/24",
    addresses: ["10.1.0.5"],
  };
  await assert.rejects(add(h, makeArgs("ADD", { ipam })), {
    name: "CniError",
    code: 102,
    message: /azure-vnet-ipam.json.*unsupported format version 7/,
  });
  await Deno.remove(stateDir, { recursive: true });
});

Deno.test("createIpamHandlers() takes the state dir from AZURE_VNET_STATE_DIR", async () => {
  const stateDir = await Deno.makeTempDir();
  const h = createIpamHandlers(testOptions({ t: 1 }));
  const ipam = {
    type: "azure-vnet-ipam",
    environment: "static",
    subnet: "10.1.0.0/24",
    addresses: ["10.1.0.5"],
  };
  await add(
    h,
    makeArgs("ADD", { ipam }, { env: { AZURE_VNET_STATE_DIR: stateDir } }),
  );
  const state = await readIpamState(`${stateDir}/azure-vnet-ipam.json`);
  assert.equal(
    state?.pools["10.1.0.0/24"]?.addresses["10.1.0.5"]?.containerId,
    "c1",
  );
  await Deno.remove(stateDir, { recursive: true });
});

Deno.test("cmdAdd() reads the NICs from IMDS when environment is imds", async () => {
  const body = [{
    ipv4: {
      ipAddress: [
        { privateIpAddress: "10.240.0.4", publicIpAddress: "" },
        { privateIpAddress: "10.240.0.7", publicIpAddress: "" },
        { privateIpAddress: "10.240.0.6", publicIpAddress: "" },
      ],
      subnet: [{ address: "10.240.0.0", prefix: "16" }],
    },
    ipv6: { ipAddress: [] },
    macAddress: "000D3AF9DCA6",
  }];
  const seen: string[] = [];
  await using imds = new FakeWireserver((req) => {
    seen.push(`${new URL(req.url).pathname} ${req.headers.get("metadata")}`);
    return Response.json(body);
  });
  const h = createIpamHandlers(
    testOptions({ t: 1 }, { store: new FakeStore() }),
  );
  const r = await add(
    h,
    makeArgs("ADD", {
      ipam: { type: "azure-vnet-ipam", environment: "imds", imdsUrl: imds.url },
    }),
  );
  assert.equal(r.ips?.[0]?.address, "10.240.0.6/16");
  assert.deepEqual(r.dns, { nameservers: ["168.63.129.16"] });
  assert.deepEqual(seen, ["/metadata/instance/network/interface true"]);
});

Deno.test("cmdDel() of another network leaves the reservation held (#12)", async () => {
  const store = new FakeStore();
  const h = createIpamHandlers(testOptions({ t: 1 }, { store }));
  const ipam = {
    type: "azure-vnet-ipam",
    environment: "static",
    subnet: "10.1.0.0/24",
    addresses: ["10.1.0.5"],
  };
  await add(h, makeArgs("ADD", { name: "blue", ipam }, { containerId: "a" }));
  await h.cmdDel(makeArgs("DEL", { name: "red", ipam }, { containerId: "a" }));
  assert.equal(
    store.state?.pools["10.1.0.0/24"]?.addresses["10.1.0.5"]?.network,
    "blue",
  );
  await h.cmdDel(makeArgs("DEL", { name: "blue", ipam }, { containerId: "a" }));
  assert.deepEqual(store.state?.pools["10.1.0.0/24"]?.addresses, {
    "10.1.0.5": {},
  });
});

Deno.test("cmdAdd() with ipam.sticky gives a pod back its address by CNI_ARGS (#16)", async () => {
  const clock = { t: 1_000 };
  const dir = await Deno.makeTempDir();
  try {
    const h = createIpamHandlers(testOptions(clock, { stateDir: dir }));
    const conf = {
      ipam: {
        type: "azure-vnet-ipam",
        environment: "static",
        subnet: "10.1.0.0/24",
        addresses: ["10.1.0.5", "10.1.0.6"],
        sticky: true,
        stickyCooldown: 30,
      },
    };
    const podArgs = (command: "ADD" | "DEL", id: string, pod: string) => {
      const base = makeArgs(command, conf, { containerId: id });
      const rawArgs = `K8S_POD_NAMESPACE=db;K8S_POD_NAME=${pod}`;
      return { ...base, rawArgs, args: parseCniArgs(rawArgs) };
    };
    const first = await add(h, podArgs("ADD", "c1", "pg-0"));
    assert.equal(first.ips?.[0]?.address, "10.1.0.5/24");
    clock.t = 2_000;
    await h.cmdDel(podArgs("DEL", "c1", "pg-0"));
    const state = await readIpamState(`${dir}/azure-vnet-ipam.json`);
    assert.deepEqual(state?.pools["10.1.0.0/24"]?.addresses["10.1.0.5"], {
      lastPod: "db/pg-0",
      releasedAt: 2_000,
    });
    const other = await add(h, podArgs("ADD", "c2", "web"));
    assert.equal(other.ips?.[0]?.address, "10.1.0.6/24");
    const back = await add(h, podArgs("ADD", "c3", "pg-0"));
    assert.equal(back.ips?.[0]?.address, "10.1.0.5/24");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
