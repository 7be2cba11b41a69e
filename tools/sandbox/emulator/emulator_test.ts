import assert from "node:assert/strict";
import {
  getImdsInstance,
  getImdsInterfaces,
  getInterfaceInfo,
} from "@vnet/azure";
import { startEmulator } from "./emulator.ts";
import { addVm, emptyState } from "./state.ts";
import { generateTls } from "./tls.ts";

const WIRE = "/machine/plugins?comp=nmagent&type=getinterfaceinfov1";
const tls = await generateTls();

function world() {
  const state = emptyState();
  addVm(state, {
    name: "vm0",
    ipConfigCount: 3,
    macAddress: "00-0D-3A-F9-DC-A6",
  });
  addVm(state, { name: "vm1", ipConfigCount: 2 });
  return state;
}

Deno.test("startEmulator() wireserver XML follows the caller's VM", async () => {
  await using emu = await startEmulator({ state: world() });
  const vm0 = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
  assert.deepEqual(vm0, [{
    macAddress: "000d3af9dca6",
    isPrimary: true,
    subnets: [{
      prefix: "10.240.0.0/16",
      addresses: [
        { address: "10.240.0.4", isPrimary: true },
        { address: "10.240.0.5", isPrimary: false },
        { address: "10.240.0.6", isPrimary: false },
      ],
    }],
  }]);
  const vm1 = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}&vm=vm1` });
  assert.deepEqual(
    vm1[0]?.subnets[0]?.addresses.map((a) => a.address),
    ["10.240.0.7", "10.240.0.8"],
  );
});

Deno.test("startEmulator() IMDS enforces Metadata, api-version and GET", async (t) => {
  await using emu = await startEmulator({ state: world() });
  const base = `${emu.httpUrl}/metadata/instance`;
  const cases: Array<[string, string, RequestInit, number, RegExp]> = [
    [
      "no Metadata header",
      `${base}?api-version=2021-02-01`,
      {},
      400,
      /Required metadata header/,
    ],
    [
      "no api-version",
      base,
      { headers: { Metadata: "true" } },
      400,
      /api-version/,
    ],
    [
      "POST",
      `${base}?api-version=2021-02-01`,
      { method: "POST", headers: { Metadata: "true" } },
      405,
      /not allowed/,
    ],
    [
      "duplicate params",
      `${base}?api-version=2021-02-01&api-version=2021-02-01`,
      { headers: { Metadata: "true" } },
      400,
      /Duplicate/,
    ],
    [
      "leaf without text",
      `${base}/compute/name?api-version=2021-02-01`,
      { headers: { Metadata: "true" } },
      400,
      /format=text/,
    ],
  ];
  for (const [name, url, init, status, body] of cases) {
    await t.step(name, async () => {
      const res = await fetch(url, init);
      assert.equal(res.status, status);
      assert.match(await res.text(), body);
    });
  }
  await t.step("leaf with format=text", async () => {
    const res = await fetch(
      `${base}/network/interface/0/ipv4/ipAddress/1/privateIpAddress?api-version=2021-02-01&format=text`,
      { headers: { Metadata: "true" } },
    );
    assert.equal(await res.text(), "10.240.0.5");
  });
});

Deno.test("startEmulator() IMDS network matches the @vnet/azure client", async () => {
  await using emu = await startEmulator({ state: world() });
  const nics = await getImdsInterfaces({ baseUrl: emu.httpUrl });
  assert.equal(nics[0]?.macAddress, "000d3af9dca6");
  assert.deepEqual(nics[0]?.subnets[0]?.addresses.map((a) => a.address), [
    "10.240.0.4",
    "10.240.0.5",
    "10.240.0.6",
  ]);
  const inst = await getImdsInstance({ baseUrl: emu.httpUrl });
  assert.equal(inst.compute.name, "vm0");
  assert.match(inst.compute.resourceId, /virtualMachines\/vm0$/);
});

Deno.test("startEmulator() serves tokens on /token, /token/ and /msi/token", async (t) => {
  await using emu = await startEmulator({ state: world() });
  const q =
    "?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com";
  for (
    const path of [
      "/metadata/identity/oauth2/token",
      "/metadata/identity/oauth2/token/",
    ]
  ) {
    await t.step(path, async () => {
      const res = await fetch(`${emu.httpUrl}${path}${q}`, {
        headers: { Metadata: "true" },
      });
      const body = await res.json();
      assert.equal(res.status, 200);
      assert.equal(body.token_type, "Bearer");
      assert.equal(body.resource, "https://management.azure.com");
      assert.match(body.expires_on, /^\d+$/);
    });
  }
  await t.step("/msi/token", async () => {
    const res = await fetch(`${emu.httpUrl}/msi/token${q}`, {
      headers: { "X-IDENTITY-HEADER": "secret" },
    });
    assert.equal(res.status, 200);
    await res.body?.cancel();
  });
});

Deno.test("startEmulator() fault injection answers 429/500, latency and malformed bodies", async () => {
  await using emu = await startEmulator({ state: world() });
  emu.setFault("wireserver", {
    errorCount: 2,
    errorStatus: 429,
    retryAfterSeconds: 0,
  });
  const delays: number[] = [];
  const sleep = (ms: number) => {
    delays.push(ms);
    return Promise.resolve();
  };
  const nics = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}`, sleep });
  assert.equal(nics.length, 1);
  assert.deepEqual(delays, [0, 0]);
  emu.setFault("wireserver", { malformedCount: 1 });
  await assert.rejects(getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` }), {
    name: "SyntaxError",
    message: /Cannot parse interface info XML/,
  });
  emu.setFault("imds", { latencyMs: 200 });
  await assert.rejects(
    getImdsInterfaces({ baseUrl: emu.httpUrl, timeoutMs: 50, retries: 0 }),
    {
      name: "AzureHttpError",
      status: 0,
      message: /timed out/,
    },
  );
  emu.setFault("imds", undefined);
});

Deno.test("startEmulator() refuses wildcard addresses", async () => {
  await assert.rejects(startEmulator({ hostname: "0.0.0.0" }), {
    name: "RangeError",
    message: /Cannot bind emulator to "0.0.0.0"/,
  });
});

async function token(httpUrl: string): Promise<string> {
  const res = await fetch(
    `${httpUrl}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://management.azure.com`,
    { headers: { Metadata: "true" } },
  );
  return (await res.json()).access_token;
}

Deno.test("startEmulator() ARM PUT allocates via Azure-AsyncOperation and updates wireserver", async (t) => {
  const state = emptyState();
  addVm(state, { name: "vm0", subnet: { prefix: "10.9.0.0/29" } });
  // A state file: every change must survive the per-request reload.
  const dir = await Deno.makeTempDir();
  await using _cleanup = {
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
  await using emu = await startEmulator({
    state,
    stateFile: `${dir}/state.json`,
    tls,
    arm: { inProgressPolls: 1, retryAfterSeconds: 0 },
  });
  using client = Deno.createHttpClient({ caCerts: [tls.caCert] });
  const vm = emu.state.vms[0];
  assert.ok(vm);
  const nicUrl =
    `${emu.httpsUrl}/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroupName}/providers/Microsoft.Network/networkInterfaces/${vm.nic.name}?api-version=2026-01-01`;
  const auth = { authorization: `Bearer ${await token(emu.httpUrl)}` };
  await t.step("no token -> 401", async () => {
    const res = await fetch(nicUrl, { client });
    assert.equal(res.status, 401);
    await res.body?.cancel();
  });
  const nic = await (await fetch(nicUrl, { client, headers: auth })).json();
  const cfg1 = nic.properties.ipConfigurations[0];
  function secondary(name: string) {
    return {
      name,
      properties: {
        privateIPAllocationMethod: "Dynamic",
        subnet: cfg1.properties.subnet,
        primary: false,
      },
    };
  }
  async function put(configs: unknown[]) {
    return await fetch(nicUrl, {
      client,
      method: "PUT",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({
        location: nic.location,
        properties: { ipConfigurations: configs },
      }),
    });
  }
  await t.step("PUT + poll -> Succeeded, .5 allocated", async () => {
    const res = await put([cfg1, secondary("ipconfig2")]);
    assert.equal(res.status, 200);
    const op = res.headers.get("azure-asyncoperation") ?? "";
    assert.match(
      op,
      /^https:\/\/127\.0\.0\.1:\d+\/subscriptions\/.*\/operations\//,
    );
    assert.equal(res.headers.get("retry-after"), "0");
    assert.equal((await res.json()).properties.provisioningState, "Updating");
    assert.equal(
      (await (await fetch(op, { client, headers: auth })).json()).status,
      "InProgress",
    );
    assert.equal(
      (await (await fetch(op, { client, headers: auth })).json()).status,
      "Succeeded",
    );
    const wire = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
    assert.deepEqual(wire[0]?.subnets[0]?.addresses.map((a) => a.address), [
      "10.9.0.4",
      "10.9.0.5",
    ]);
  });
  await t.step(
    "subnet /29 has 3 usable: a 4th -> Failed SubnetIsFull, NIC unchanged",
    async () => {
      const res = await put([
        cfg1,
        secondary("ipconfig2"),
        secondary("ipconfig3"),
        secondary("ipconfig4"),
      ]);
      const op = res.headers.get("azure-asyncoperation") ?? "";
      await res.body?.cancel();
      await (await fetch(op, { client, headers: auth })).body?.cancel();
      const done = await (await fetch(op, { client, headers: auth })).json();
      assert.equal(done.status, "Failed");
      assert.equal(done.error.code, "SubnetIsFull");
      assert.equal(emu.state.vms[0]?.nic.ipConfigurations.length, 2);
    },
  );
  await t.step(
    "257 ipconfigs -> 400 MaxIpConfigurationsPerNicReached",
    async () => {
      const many = [
        cfg1,
        ...Array.from({ length: 256 }, (_, i) => secondary(`ipconfig${i + 2}`)),
      ];
      const res = await put(many);
      assert.equal(res.status, 400);
      assert.equal(
        (await res.json()).error.code,
        "MaxIpConfigurationsPerNicReached",
      );
    },
  );
  await t.step("stale If-Match -> 412", async () => {
    const res = await fetch(nicUrl, {
      client,
      method: "PUT",
      headers: { ...auth, "if-match": 'W/"stale"' },
      body: "{}",
    });
    assert.equal(res.status, 412);
    await res.body?.cancel();
  });
});

Deno.test("startEmulator() persists state to a file other processes can read", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const stateFile = `${dir}/state.json`;
    await using emu = await startEmulator({ stateFile });
    const res = await fetch(`${emu.httpUrl}/_emulator/vms`, {
      method: "POST",
      body: JSON.stringify({ name: "vmA", ipConfigCount: 2 }),
    });
    assert.equal(res.status, 201);
    await res.body?.cancel();
    const onDisk = JSON.parse(await Deno.readTextFile(stateFile));
    assert.equal(
      onDisk.vms[0].nic.ipConfigurations[1].privateIPAddress,
      "10.240.0.5",
    );
    onDisk.vms[0].nic.ipConfigurations.pop();
    await Deno.writeTextFile(stateFile, JSON.stringify(onDisk));
    const nics = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
    assert.equal(nics[0]?.subnets[0]?.addresses.length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
