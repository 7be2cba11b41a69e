import assert from "node:assert/strict";
import type { NetConf } from "@vnet/cni";
import { logLevelOf, parseConfig } from "./config.ts";

function conf(extra: Record<string, unknown>): NetConf {
  return {
    cniVersion: "1.0.0",
    name: "azure",
    type: "azure-vnet",
    ipam: { type: "azure-vnet-ipam" },
    ...extra,
  };
}

Deno.test("parseConfig() applies defaults when fields are absent", () => {
  const c = parseConfig(conf({}));
  assert.equal(c.mode, "bridge");
  assert.equal(c.bridge, "azure0");
  assert.equal(c.master, undefined);
  assert.equal(c.mtu, undefined);
  assert.equal(c.dns, undefined);
  assert.equal(c.logLevel, "info");
  assert.ok(!c.ipamExec);
  assert.ok(!c.spoofCheck);
  assert.deepEqual(c.ipam, { type: "azure-vnet-ipam" });
});

Deno.test("parseConfig() keeps valid fields", () => {
  const c = parseConfig(conf({
    mode: "",
    bridge: "br-az",
    master: "eth1",
    mtu: 1400,
    dns: { nameservers: ["10.0.0.10"], search: ["svc"] },
    logLevel: "DEBUG",
    ipamExec: true,
    spoofCheck: true,
  }));
  assert.equal(c.mode, "bridge");
  assert.equal(c.bridge, "br-az");
  assert.equal(c.master, "eth1");
  assert.equal(c.mtu, 1400);
  assert.deepEqual(c.dns, { nameservers: ["10.0.0.10"], search: ["svc"] });
  assert.equal(c.logLevel, "debug");
  assert.ok(c.ipamExec);
  assert.ok(c.spoofCheck);
});

Deno.test("parseConfig() rejects invalid fields with code 7", async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["unknown mode", { mode: "tunnel" }, /mode "tunnel"/],
    ["long bridge", { bridge: "a".repeat(16) }, /bridge must be at most 15/],
    ["bridge with slash", { bridge: "a/b" }, /bridge must not contain/],
    ["bridge with %", { bridge: "azure%d" }, /bridge must not contain/],
    ["master with a newline", { master: "eth\n0" }, /master must not contain/],
    ["long master", { master: "m".repeat(16) }, /master must be at most 15/],
    ["small mtu", { mtu: 10 }, /mtu must be at least 68/],
    ["fractional mtu", { mtu: 1500.5 }, /mtu/],
    ["bad logLevel", { logLevel: "loud" }, /logLevel "loud"/],
    ["missing ipam", { ipam: undefined }, /ipam/],
    ["empty ipam type", { ipam: { type: "" } }, /ipam.type must not be empty/],
    ["ipamExec not boolean", { ipamExec: "yes" }, /ipamExec/],
    ["spoofCheck not boolean", { spoofCheck: "off" }, /spoofCheck/],
  ];
  for (const [label, extra, message] of cases) {
    await t.step(label, () => {
      assert.throws(() => parseConfig(conf(extra)), {
        name: "CniError",
        code: 7,
        message,
      });
    });
  }
});

Deno.test("parseConfig() reports every invalid field in one error", () => {
  assert.throws(
    () =>
      parseConfig(conf({
        mode: "tunnel",
        mtu: 10,
        logLevel: "loud",
        bridge: "a/b",
        ipam: { type: "azure-vnet-ipam", queryUrl: "file:///etc/passwd" },
      })),
    {
      name: "CniError",
      code: 7,
      // Each field, in any order.
      message:
        /^Invalid network config: (?=.*mode "tunnel")(?=.*mtu must be at least 68)(?=.*logLevel "loud")(?=.*bridge must not contain)(?=.*"ipam\.queryUrl")/s,
    },
  );
});

Deno.test("parseConfig() validates an azure-vnet-ipam section with @vnet/ipam", async (t) => {
  await t.step("exposes the parsed IPAM config", () => {
    const c = parseConfig(conf({
      ipam: { type: "azure-vnet-ipam", environment: "imds", queryInterval: 3 },
    }));
    assert.equal(c.ipamConfig?.environment, "imds");
    assert.equal(c.ipamConfig?.queryIntervalMs, 3000);
  });
  const bad: [string, Record<string, unknown>, RegExp][] = [
    [
      "file: queryUrl",
      { queryUrl: "file:///etc/passwd" },
      /field "ipam\.queryUrl" "file:\/\/\/etc\/passwd" must be an http or https URL/,
    ],
    ["ftp imdsUrl", { imdsUrl: "ftp://h/" }, /"ipam\.imdsUrl".*not "ftp:"/],
    ["bad subnet", { subnet: "10.0.0.0/40" }, /"ipam\.subnet"/],
    [
      "two invalid fields",
      { queryUrl: "file:///x", queryInterval: "soon" },
      /"ipam\.queryUrl".*; field "ipam\.queryInterval"/,
    ],
    [
      "secrets in a URL",
      { queryUrl: "ftp://user:pw@h/p?sig=xyz" },
      /^(?!.*pw)(?!.*xyz).*"ftp:\/\/REDACTED@h\/p\?sig=REDACTED"/s,
    ],
  ];
  for (const [label, ipam, message] of bad) {
    for (const ipamExec of [false, true]) {
      await t.step(`${label} fails with 7 (ipamExec ${ipamExec})`, () => {
        assert.throws(
          () =>
            parseConfig(conf({
              ipamExec,
              ipam: { type: "azure-vnet-ipam", ...ipam },
            })),
          { name: "CniError", code: 7, message },
        );
      });
    }
  }
  await t.step("leaves another IPAM's section to that IPAM", () => {
    const c = parseConfig(conf({
      ipam: { type: "host-local", queryUrl: "file:///x", subnet: "bogus" },
    }));
    assert.equal(c.ipamConfig, undefined);
    assert.deepEqual(c.ipam, {
      type: "host-local",
      queryUrl: "file:///x",
      subnet: "bogus",
    });
  });
});

Deno.test("logLevelOf() never throws and falls back to info", () => {
  assert.equal(logLevelOf(null), "info");
  assert.equal(logLevelOf({ logLevel: 3 }), "info");
  assert.equal(logLevelOf({ logLevel: "warn" }), "warning");
  assert.equal(logLevelOf({ logLevel: "Error" }), "error");
});
