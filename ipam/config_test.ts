import assert from "node:assert/strict";
import type { NetConf } from "@vnet/cni";
import { parseIpamConfig } from "./config.ts";

function conf(ipam: Record<string, unknown>, extra = {}): NetConf {
  return {
    cniVersion: "1.0.0",
    name: "azure",
    type: "azure-vnet",
    ipam: { type: "azure-vnet-ipam", ...ipam },
    ...extra,
  };
}

Deno.test("parseIpamConfig() applies defaults", () => {
  const c = parseIpamConfig(conf({}));
  assert.equal(c.environment, "azure");
  assert.equal(c.queryIntervalMs, 10_000);
  assert.match(c.queryUrl, /^http:\/\/168\.63\.129\.16\/machine\/plugins/);
  assert.deepEqual(c.dns, { nameservers: ["168.63.129.16"] });
  assert.equal(
    parseIpamConfig(conf({ queryInterval: 2.5 })).queryIntervalMs,
    2500,
  );
});

Deno.test("parseIpamConfig() rejects bad fields with code 7", async (t) => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ environment: "mas" }, /ipam\.environment/],
    [{ queryInterval: "soon" }, /queryInterval/],
    [{ queryInterval: -1 }, /queryInterval/],
    [{ subnet: "10.0.0.0/40" }, /ipam\.subnet/],
    [{ ipAddress: "10.0.0.300" }, /ipam\.ipAddress/],
    [{ environment: "static" }, /needs "ipam.subnet" and "ipam.addresses"/],
    [
      {
        environment: "static",
        interfaces: [{ macAddress: "zz", subnets: [] }],
      },
      /macAddress/,
    ],
  ];
  for (const [ipam, message] of cases) {
    await t.step(JSON.stringify(ipam), () => {
      assert.throws(() => parseIpamConfig(conf(ipam)), {
        name: "CniError",
        code: 7,
        message,
      });
    });
  }
  assert.throws(
    () => parseIpamConfig({ cniVersion: "1.0.0", name: "n", type: "t" }),
    { name: "CniError", code: 7, message: /"ipam" is missing/ },
  );
});

Deno.test("parseIpamConfig() takes master and dns from the top level", () => {
  const c = parseIpamConfig(conf(
    { dns: { nameservers: ["1.1.1.1"] } },
    { master: "eth1", dns: { nameservers: [] } },
  ));
  assert.equal(c.master, "eth1");
  assert.deepEqual(c.dns, { nameservers: ["1.1.1.1"] });
});
