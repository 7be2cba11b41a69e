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

Deno.test("parseIpamConfig() accepts only http and https source URLs", async (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [
      { queryUrl: "file:///etc/passwd" },
      /field "ipam\.queryUrl" "file:\/\/\/etc\/passwd" must be an http or https URL, not "file:"/,
    ],
    [
      { queryUrl: "ftp://168.63.129.16/x" },
      /field "ipam\.queryUrl" .* not "ftp:"/,
    ],
    [{ imdsUrl: "file:/x" }, /field "ipam\.imdsUrl" .* not "file:"/],
    [{ imdsUrl: "169.254.169.254" }, /field "ipam\.imdsUrl" .* is no URL/],
    [{ queryUrl: "http://" }, /field "ipam\.queryUrl" .* is no URL/],
  ];
  for (const [ipam, message] of bad) {
    await t.step(`rejects ${JSON.stringify(ipam)}`, () => {
      assert.throws(() => parseIpamConfig(conf(ipam)), {
        name: "CniError",
        code: 7,
        message,
      });
    });
  }
  await t.step("keeps http and https URLs", () => {
    const c = parseIpamConfig(conf({
      queryUrl: "https://10.0.0.1:8443/machine?comp=nmagent",
      imdsUrl: "http://127.0.0.1:8080",
    }));
    assert.equal(c.queryUrl, "https://10.0.0.1:8443/machine?comp=nmagent");
    assert.equal(c.imdsUrl, "http://127.0.0.1:8080");
  });
});

Deno.test("parseIpamConfig() names every invalid field in one error", async (t) => {
  await t.step("two invalid URLs", () => {
    assert.throws(
      () =>
        parseIpamConfig(
          conf({ queryUrl: "file:///etc/passwd", imdsUrl: "ftp://h/" }),
        ),
      {
        name: "CniError",
        code: 7,
        message: /"ipam\.queryUrl".*; field "ipam\.imdsUrl"/,
      },
    );
  });
  await t.step("a shape error and value errors together", () => {
    assert.throws(
      () =>
        parseIpamConfig(conf({
          environment: "mars",
          queryInterval: "soon",
          subnet: "10.0.0.0/40",
          queryUrl: "file:///x",
        })),
      {
        name: "CniError",
        code: 7,
        // Each field, in any order.
        message:
          /^(?=.*"ipam\.environment")(?=.*"ipam\.queryInterval")(?=.*"ipam\.subnet")(?=.*"ipam\.queryUrl")/s,
      },
    );
  });
  await t.step(
    "static addresses and interface prefixes that are no IPv4",
    () => {
      assert.throws(
        () =>
          parseIpamConfig(conf({
            environment: "static",
            subnet: "10.0.0.0/24",
            addresses: ["10.0.0.4", "10.0.0.999", "fe80::1"],
          })),
        {
          name: "CniError",
          code: 7,
          message:
            /^(?=.*"ipam\.addresses\.1")(?=.*"ipam\.addresses\.2")(?!.*"ipam\.addresses\.0")/s,
        },
      );
      assert.throws(
        () =>
          parseIpamConfig(conf({
            environment: "static",
            interfaces: [{
              macAddress: "00-0d-3a-00-00-01",
              subnets: [{
                prefix: "10.0.0.0/33",
                addresses: [{ address: "ten" }],
              }],
            }],
          })),
        {
          name: "CniError",
          code: 7,
          message:
            /^(?=.*"ipam\.interfaces\.0\.subnets\.0\.prefix")(?=.*"ipam\.interfaces\.0\.subnets\.0\.addresses\.0\.address")/s,
        },
      );
    },
  );
  await t.step("a wrong type next to an invalid URL", () => {
    assert.throws(
      () => parseIpamConfig(conf({ queryTimeout: true, imdsUrl: "file:/x" })),
      {
        name: "CniError",
        code: 7,
        message: /"ipam\.queryTimeout".*; field "ipam\.imdsUrl"/,
      },
    );
  });
});

Deno.test("parseIpamConfig() redacts URL secrets in its messages", () => {
  assert.throws(
    () => parseIpamConfig(conf({ queryUrl: "ftp://user:pw@h/p?sig=xyz" })),
    {
      name: "CniError",
      code: 7,
      // The URL with its secrets replaced, and neither secret anywhere.
      message: /^(?!.*pw)(?!.*xyz).*"ftp:\/\/REDACTED@h\/p\?sig=REDACTED"/s,
    },
  );
});
