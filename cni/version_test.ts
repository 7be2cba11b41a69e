import assert from "node:assert/strict";
import type { Result } from "./spec.ts";
import {
  checkCommandVersion,
  compareVersions,
  convertResult,
  negotiateVersion,
  parseResult,
} from "./version.ts";

const DNS = {
  nameservers: ["168.63.129.16"],
  search: ["a"],
  options: ["ndots:2"],
};
const FULL_IPS = [
  { address: "10.240.0.5/16", gateway: "10.240.0.1", interface: 1 },
  { address: "10.240.0.6/16", gateway: "10.240.0.1", interface: 1 },
  { address: "fd00::5/64", gateway: "fd00::1", interface: 1 },
];

const FULL: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "azv1", mac: "7e:2d:1c:aa:0f:31", mtu: 1500 },
    {
      name: "eth0",
      mac: "4a:9e:0b:12:c4:77",
      mtu: 1500,
      sandbox: "/run/netns/x",
      socketPath: "/s",
      pciID: "0000:00:01.0",
    },
  ],
  ips: FULL_IPS,
  routes: [
    { dst: "0.0.0.0/0", gw: "10.240.0.1", mtu: 1400, table: 100, scope: 0 },
    { dst: "::/0", gw: "fd00::1", priority: 5, advmss: 1300 },
  ],
  dns: DNS,
};

const LEGACY_WIRE = {
  ip4: {
    ip: "10.240.0.5/16",
    gateway: "10.240.0.1",
    routes: [{ dst: "0.0.0.0/0", gw: "10.240.0.1" }],
  },
  ip6: {
    ip: "fd00::5/64",
    gateway: "fd00::1",
    routes: [{ dst: "::/0", gw: "fd00::1" }],
  },
  dns: { nameservers: ["168.63.129.16"], search: ["a"], options: ["ndots:2"] },
};

const V03_WIRE = {
  interfaces: [
    { name: "azv1", mac: "7e:2d:1c:aa:0f:31" },
    { name: "eth0", mac: "4a:9e:0b:12:c4:77", sandbox: "/run/netns/x" },
  ],
  ips: [
    {
      version: "4",
      address: "10.240.0.5/16",
      gateway: "10.240.0.1",
      interface: 1,
    },
    {
      version: "4",
      address: "10.240.0.6/16",
      gateway: "10.240.0.1",
      interface: 1,
    },
    { version: "6", address: "fd00::5/64", gateway: "fd00::1", interface: 1 },
  ],
  routes: [
    { dst: "0.0.0.0/0", gw: "10.240.0.1" },
    { dst: "::/0", gw: "fd00::1" },
  ],
  dns: DNS,
};

const V10_WIRE = {
  interfaces: V03_WIRE.interfaces,
  ips: FULL_IPS,
  routes: V03_WIRE.routes,
  dns: DNS,
};

Deno.test("convertResult() writes each version's exact wire form", async (t) => {
  const cases: [string, Record<string, unknown>][] = [
    ["0.1.0", LEGACY_WIRE],
    ["0.2.0", LEGACY_WIRE],
    ["0.3.0", V03_WIRE],
    ["0.3.1", V03_WIRE],
    ["0.4.0", V03_WIRE],
    ["1.0.0", V10_WIRE],
    ["1.1.0", { ...FULL, cniVersion: undefined }],
  ];
  for (const [version, wire] of cases) {
    await t.step(version, () => {
      const expected = { ...wire, cniVersion: version };
      assert.deepEqual(
        convertResult(FULL, version),
        JSON.parse(JSON.stringify(expected)),
      );
      // As the reference: cniVersion first, and version first in 0.3.x ips.
      const out = convertResult(FULL, version);
      assert.equal(Object.keys(out)[0], "cniVersion");
      for (const ip of (out.ips ?? []) as Record<string, unknown>[]) {
        assert.equal(Object.keys(ip)[0], version < "1" ? "version" : "address");
      }
    });
  }
});

Deno.test("parseResult() reads each version back into the internal shape", async (t) => {
  const legacyBack: Result = {
    cniVersion: "",
    ips: [
      { address: "10.240.0.5/16", gateway: "10.240.0.1" },
      { address: "fd00::5/64", gateway: "fd00::1" },
    ],
    routes: [
      { dst: "0.0.0.0/0", gw: "10.240.0.1" },
      { dst: "::/0", gw: "fd00::1" },
    ],
    dns: DNS,
  };
  const v03Back: Result = {
    cniVersion: "",
    interfaces: V03_WIRE.interfaces,
    ips: FULL_IPS,
    routes: V03_WIRE.routes,
    dns: DNS,
  };
  const cases: [string, Result][] = [
    ["0.1.0", legacyBack],
    ["0.2.0", legacyBack],
    ["0.3.0", v03Back],
    ["0.3.1", v03Back],
    ["0.4.0", v03Back],
    ["1.0.0", v03Back],
    ["1.1.0", FULL],
  ];
  for (const [version, back] of cases) {
    await t.step(version, () => {
      const wire = convertResult(FULL, version);
      assert.deepEqual(parseResult(wire), { ...back, cniVersion: version });
      // Round trip: converting the parsed result again is stable.
      assert.deepEqual(convertResult(parseResult(wire), version), wire);
    });
  }
});

Deno.test("convertResult() converts up from 0.2.0 and across versions", () => {
  const legacy = parseResult({
    cniVersion: "0.2.0",
    ip4: {
      ip: "10.0.0.5/24",
      gateway: "10.0.0.1",
      routes: [{ dst: "0.0.0.0/0" }],
    },
  });
  assert.deepEqual(convertResult(legacy, "0.4.0"), {
    cniVersion: "0.4.0",
    ips: [{ version: "4", address: "10.0.0.5/24", gateway: "10.0.0.1" }],
    routes: [{ dst: "0.0.0.0/0" }],
  });
  assert.deepEqual(convertResult(legacy, "1.1.0"), {
    cniVersion: "1.1.0",
    ips: [{ address: "10.0.0.5/24", gateway: "10.0.0.1" }],
    routes: [{ dst: "0.0.0.0/0" }],
  });
});

Deno.test("convertResult() drops routes of a family without address for 0.2.0", () => {
  const r: Result = {
    cniVersion: "1.0.0",
    ips: [{ address: "10.0.0.5/24" }],
    routes: [{ dst: "::/0", gw: "fd00::1" }, { dst: "10.1.0.0/16" }],
  };
  assert.deepEqual(convertResult(r, "0.2.0"), {
    cniVersion: "0.2.0",
    ip4: { ip: "10.0.0.5/24", routes: [{ dst: "10.1.0.0/16" }] },
  });
});

Deno.test("convertResult() throws when a 0.x result would have no address", () => {
  for (const v of ["0.1.0", "0.2.0"]) {
    assert.throws(() => convertResult({ cniVersion: "1.0.0" }, v), {
      name: "CniError",
      code: 999,
      message: /no valid IP addresses/,
    });
  }
  // Newer versions accept an address-less result.
  assert.deepEqual(convertResult({ cniVersion: "1.0.0" }, "0.3.1"), {
    cniVersion: "0.3.1",
  });
});

Deno.test("convertResult() rejects an unsupported version with code 1", () => {
  assert.throws(() => convertResult(FULL, "0.5.0"), {
    name: "CniError",
    code: 1,
    message: /Incompatible CNI version "0.5.0"/,
  });
});

Deno.test("parseResult() rejects bad shapes with code 6", async (t) => {
  const cases: [unknown, RegExp][] = [
    ["x", /not a JSON object/],
    [{ cniVersion: "1.0.0", ips: {} }, /field "ips" must be a list/],
    [{ cniVersion: "1.0.0", ips: [{}] }, /field "ips\[0\].address" must be/],
    [
      { cniVersion: "1.0.0", routes: [{ dst: "x", mtu: "1" }] },
      /routes\[0\].mtu" must be a number/,
    ],
    [{ cniVersion: "0.2.0", ip4: { gateway: "x" } }, /field "ip4.ip"/],
    [
      { cniVersion: "1.0.0", dns: { nameservers: [1] } },
      /dns.nameservers" must be a list of strings/,
    ],
  ];
  for (const [input, message] of cases) {
    await t.step(JSON.stringify(input), () => {
      assert.throws(() => parseResult(input), {
        name: "CniError",
        code: 6,
        message,
      });
    });
  }
  await t.step("unsupported version gives code 1", () => {
    assert.throws(() => parseResult({ cniVersion: "2.0.0" }), {
      name: "CniError",
      code: 1,
      message: /Incompatible/,
    });
  });
  await t.step("no cniVersion: read by shape", () => {
    assert.equal(
      parseResult({ ip4: { ip: "1.2.3.4/32" } }).cniVersion,
      "0.2.0",
    );
    assert.equal(parseResult({ ips: [] }).cniVersion, "1.1.0");
  });
});

Deno.test("negotiateVersion() defaults to 0.2.0 and lists supported versions", () => {
  assert.equal(negotiateVersion(undefined), "0.2.0");
  assert.equal(negotiateVersion(""), "0.2.0");
  assert.equal(negotiateVersion("0.3.1"), "0.3.1");
  try {
    negotiateVersion("9.9.9");
    assert.fail("no error");
  } catch (err) {
    assert.ok(err instanceof Error && err.name === "CniError");
    const e = err as Error & { code: number; details: string };
    assert.equal(e.code, 1);
    assert.equal(
      e.details,
      'config is "9.9.9", plugin supports 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0',
    );
  }
  assert.throws(() => negotiateVersion(3), { name: "CniError", code: 1 });
});

Deno.test("checkCommandVersion() enforces CHECK ≥ 0.4.0, GC/STATUS ≥ 1.1.0", () => {
  const table: [string, string, boolean][] = [
    ["ADD", "0.1.0", true],
    ["DEL", "0.1.0", true],
    ["CHECK", "0.3.1", false],
    ["CHECK", "0.4.0", true],
    ["GC", "1.0.0", false],
    ["GC", "1.1.0", true],
    ["STATUS", "0.4.0", false],
    ["STATUS", "1.1.0", true],
  ];
  for (const [cmd, v, ok] of table) {
    const run = () =>
      checkCommandVersion(cmd as "ADD" | "CHECK" | "GC" | "STATUS", v);
    if (ok) run();
    else {
      assert.throws(run, {
        name: "CniError",
        code: 4,
        message: new RegExp(`${cmd} for cniVersion "${v}"`),
      });
    }
  }
});

Deno.test("compareVersions() orders versions numerically", () => {
  assert.ok(compareVersions("0.10.0", "0.9.0") > 0);
  assert.ok(compareVersions("0.3.0", "0.3.1") < 0);
  assert.throws(() => compareVersions("1.0", "1.0.0"), {
    name: "CniError",
    code: 1,
    message: /Cannot parse CNI version "1.0"/,
  });
});
