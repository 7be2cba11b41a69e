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
  }));
  assert.equal(c.mode, "bridge");
  assert.equal(c.bridge, "br-az");
  assert.equal(c.master, "eth1");
  assert.equal(c.mtu, 1400);
  assert.deepEqual(c.dns, { nameservers: ["10.0.0.10"], search: ["svc"] });
  assert.equal(c.logLevel, "debug");
  assert.ok(c.ipamExec);
});

Deno.test("parseConfig() rejects invalid fields with code 7", async (t) => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["unknown mode", { mode: "tunnel" }, /mode "tunnel"/],
    ["long bridge", { bridge: "a".repeat(16) }, /bridge must be at most 15/],
    ["bridge with slash", { bridge: "a/b" }, /bridge must not contain/],
    ["long master", { master: "m".repeat(16) }, /master must be at most 15/],
    ["small mtu", { mtu: 10 }, /mtu must be at least 68/],
    ["fractional mtu", { mtu: 1500.5 }, /mtu/],
    ["bad logLevel", { logLevel: "loud" }, /logLevel "loud"/],
    ["missing ipam", { ipam: undefined }, /ipam/],
    ["empty ipam type", { ipam: { type: "" } }, /ipam.type must not be empty/],
    ["ipamExec not boolean", { ipamExec: "yes" }, /ipamExec/],
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

Deno.test("logLevelOf() never throws and falls back to info", () => {
  assert.equal(logLevelOf(null), "info");
  assert.equal(logLevelOf({ logLevel: 3 }), "info");
  assert.equal(logLevelOf({ logLevel: "warn" }), "warning");
  assert.equal(logLevelOf({ logLevel: "Error" }), "error");
});
