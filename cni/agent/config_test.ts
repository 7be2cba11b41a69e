import assert from "node:assert/strict";
import {
  loadAgentConfig,
  parseAgentConfig,
  parseListenAddress,
} from "./config.ts";

Deno.test("parseAgentConfig() applies the defaults: listener on 127.0.0.1:10091, no warm pool", () => {
  assert.deepEqual(parseAgentConfig({}), {
    metrics: { hostname: "127.0.0.1", port: 10091 },
    cloud: {
      armEndpoint: "https://management.azure.com",
      imdsUrl: "http://169.254.169.254",
    },
  });
});

Deno.test("parseAgentConfig() reads every setting", () => {
  const nicId =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/nic0";
  const c = parseAgentConfig({
    metrics: { address: "[::1]:9100" },
    warmPool: {
      warmMin: 2,
      warmMax: 6,
      nicId,
      maxIpConfigs: 64,
      intervalSeconds: 1,
      minUpdateIntervalSeconds: 0.5,
      maxBackoffSeconds: 30,
      scaleUpWaitSeconds: 3,
    },
    cloud: {
      armEndpoint: "https://10.0.0.1:8443",
      imdsUrl: "http://10.0.0.1:8080",
      caFile: "/etc/azure-vnet/ca.pem",
    },
  }, "/etc/azure-vnet/agent.json");
  assert.deepEqual(c, {
    path: "/etc/azure-vnet/agent.json",
    metrics: { hostname: "::1", port: 9100 },
    warmPool: {
      warmMin: 2,
      warmMax: 6,
      nicId,
      maxIpConfigs: 64,
      intervalMs: 1000,
      minUpdateIntervalMs: 500,
      maxBackoffMs: 30_000,
      scaleUpWaitMs: 3000,
    },
    cloud: {
      armEndpoint: "https://10.0.0.1:8443",
      imdsUrl: "http://10.0.0.1:8080",
      caFile: "/etc/azure-vnet/ca.pem",
    },
  });
});

Deno.test("parseAgentConfig() turns the listener off with an empty address", () => {
  assert.equal(
    parseAgentConfig({ metrics: { address: "" } }).metrics,
    undefined,
  );
});

Deno.test("parseAgentConfig() names every invalid field", async (t) => {
  const cases: [string, unknown, RegExp][] = [
    [
      "warmMin above warmMax",
      { warmPool: { warmMin: 7, warmMax: 6 } },
      /warmPool\.warmMin: warmMin must not exceed warmMax/,
    ],
    ["more than 256 ipconfigs", {
      warmPool: { warmMin: 1, warmMax: 2, maxIpConfigs: 257 },
    }, /warmPool\.maxIpConfigs/],
    [
      "a fractional warmMin",
      { warmPool: { warmMin: 1.5, warmMax: 2 } },
      /warmPool\.warmMin/,
    ],
    [
      "a bad NIC id",
      { warmPool: { warmMin: 1, warmMax: 2, nicId: "nic0" } },
      /warmPool\.nicId: must be a NIC's ARM id/,
    ],
    [
      "a host name as address",
      { metrics: { address: "localhost:1" } },
      /metrics\.address: must be IP:port/,
    ],
    [
      "a port out of range",
      { metrics: { address: "127.0.0.1:70000" } },
      /metrics\.address/,
    ],
    [
      "a file URL",
      { cloud: { armEndpoint: "file:///x" } },
      /cloud\.armEndpoint/,
    ],
    ["an unknown key", { warm: {} }, /Unrecognized key: "warm"/],
    ["no object", [], /\(top\)/],
  ];
  for (const [name, value, message] of cases) {
    await t.step(name, () => {
      assert.throws(() => parseAgentConfig(value, "/f.json"), {
        name: "AgentConfigError",
        message,
      });
    });
  }
  await t.step("all problems in one error", () => {
    assert.throws(
      () =>
        parseAgentConfig({
          metrics: { address: "x" },
          warmPool: { warmMin: 3, warmMax: 2 },
        }),
      { name: "AgentConfigError", message: /metrics\.address.*; warmPool/ },
    );
  });
});

Deno.test("parseListenAddress() takes IP literals only", () => {
  assert.deepEqual(parseListenAddress("0.0.0.0:0"), {
    hostname: "0.0.0.0",
    port: 0,
  });
  assert.equal(parseListenAddress("256.0.0.1:80"), undefined);
  assert.equal(parseListenAddress("[zz]:80"), undefined);
  assert.equal(parseListenAddress("127.0.0.1"), undefined);
});

Deno.test("loadAgentConfig() reads AZURE_VNET_AGENT_CONFIG; a missing named file is an error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/agent.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ warmPool: { warmMin: 1, warmMax: 3 } }),
    );
    const c = await loadAgentConfig({ AZURE_VNET_AGENT_CONFIG: path });
    assert.equal(c.path, path);
    assert.equal(c.warmPool?.warmMax, 3);
    await Deno.writeTextFile(path, "{");
    await assert.rejects(loadAgentConfig({ AZURE_VNET_AGENT_CONFIG: path }), {
      name: "AgentConfigError",
      message: /not JSON/,
    });
    await assert.rejects(
      loadAgentConfig({ AZURE_VNET_AGENT_CONFIG: `${dir}/none.json` }),
      { name: "NotFound" },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
