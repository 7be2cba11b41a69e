import assert from "node:assert/strict";
import {
  getImdsInstance,
  getImdsInterfaces,
  getInterfaceInfo,
} from "@vnet/azure";
import { type ArmBehaviour, startEmulator } from "./emulator.ts";
import { addVm, emptyState, type EmulatorState } from "./state.ts";
import { generateTls } from "./tls.ts";

const WIRE = "/machine/plugins?comp=nmagent&type=getinterfaceinfov1";
const tls = await generateTls({ removeOnUnload: true });

/** vm0's IPv4 subnet as the clients parse it: 3 ipconfigs from .4. */
const VM0_IPV4 = {
  prefix: "10.240.0.0/16",
  addresses: ["10.240.0.4", "10.240.0.5", "10.240.0.6"].map((address, i) => ({
    address,
    isPrimary: i === 0,
  })),
};

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
    subnets: [VM0_IPV4],
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
  await using persisted = await startPersisted(state, {
    inProgressPolls: 1,
    retryAfterSeconds: 0,
  });
  const { emu } = persisted;
  using client = Deno.createHttpClient({ caCerts: [tls.caCert] });
  const { nicUrl, auth, get, put } = await armSession(emu, client, "vm0");
  await t.step("no token -> 401", async () => {
    const res = await fetch(nicUrl, { client });
    assert.equal(res.status, 401);
    await res.body?.cancel();
  });
  const cfg1 = (await get()).properties.ipConfigurations[0];
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
  await t.step("the etag changes when a PUT is accepted", async () => {
    const read = await get();
    const res = await put([cfg1, secondary("ipconfig2")]);
    assert.equal(res.status, 200);
    const accepted = (await res.json()).etag;
    assert.notEqual(accepted, read.etag);
    // A writer that read before it is refused while it is in progress.
    const stale = await fetch(nicUrl, {
      client,
      method: "PUT",
      headers: { ...auth, "if-match": read.etag },
      body: JSON.stringify(read),
    });
    assert.equal(stale.status, 412);
    await stale.body?.cancel();
  });
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

/** An ARM session on a VM's NIC: its URL, a bearer token, GET and PUT. */
async function armSession(
  emu: { httpUrl: string; httpsUrl: string; state: EmulatorState },
  client: Deno.HttpClient,
  vmName: string,
) {
  const vm = emu.state.vms.find((v) => v.name === vmName);
  assert.ok(vm);
  const nicUrl =
    `${emu.httpsUrl}/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroupName}/providers/Microsoft.Network/networkInterfaces/${vm.nic.name}?api-version=2026-01-01`;
  const auth = { authorization: `Bearer ${await token(emu.httpUrl)}` };
  async function get() {
    return await (await fetch(nicUrl, { client, headers: auth })).json();
  }
  async function put(configs: unknown[]) {
    const nic = await get();
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
  /** PUTs and polls the operation to its end; returns its final status. */
  async function putAndWait(configs: unknown[]) {
    const res = await put(configs);
    assert.equal(res.status, 200, await res.clone().text());
    const op = res.headers.get("azure-asyncoperation") ?? "";
    await res.body?.cancel();
    for (;;) {
      const done = await (await fetch(op, { client, headers: auth })).json();
      if (done.status !== "InProgress") return done;
    }
  }
  return { nicUrl, auth, get, put, putAndWait };
}

/**
 * An emulator with TLS over `state` kept in a temporary state file, so
 * every change must survive the per-request reload.
 */
async function startPersisted(
  state: EmulatorState,
  arm: Partial<ArmBehaviour>,
) {
  const dir = await Deno.makeTempDir();
  const stateFile = `${dir}/state.json`;
  const emu = await startEmulator({ state, stateFile, tls, arm });
  return {
    emu,
    stateFile,
    async [Symbol.asyncDispose]() {
      await emu.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function dualStackWorld() {
  const state = emptyState();
  addVm(state, {
    name: "vm0",
    macAddress: "00-0D-3A-F9-DC-A6",
    subnet: { prefix: "10.240.0.0/16", ipv6Prefix: "fd00:10:240::/64" },
    ipConfigCount: 3,
    ipv6ConfigCount: 2,
  });
  addVm(state, {
    name: "vm1",
    subnet: { prefix: "10.240.0.0/16", ipv6Prefix: "fd00:10:240::/64" },
    ipConfigCount: 1,
    ipv6ConfigCount: 1,
  });
  return state;
}

Deno.test("startEmulator() serves a dual-stack NIC to the @vnet/azure clients", async (t) => {
  await using emu = await startEmulator({ state: dualStackWorld() });
  const want = [{
    macAddress: "000d3af9dca6",
    isPrimary: true,
    subnets: [VM0_IPV4, {
      prefix: "fd00:10:240::/64",
      addresses: [
        { address: "fd00:10:240::4", isPrimary: true },
        { address: "fd00:10:240::5", isPrimary: false },
      ],
    }],
  }];
  await t.step(
    "wireserver: an IPv6 IPSubnet, the node's own first",
    async () => {
      const url = `${emu.httpUrl}${WIRE}`;
      assert.deepEqual(await getInterfaceInfo({ url }), want);
      const xml = await (await fetch(url)).text();
      assert.match(
        xml,
        /<IPSubnet Prefix="fd00:10:240::\/64">\n {6}<IPAddress Address="fd00:10:240::4" IsPrimary="true"\/>\n {6}<IPAddress Address="fd00:10:240::5" IsPrimary="false"\/>\n {4}<\/IPSubnet>/,
      );
    },
  );
  await t.step(
    "IMDS: ipv6.ipAddress in NIC order, with its subnet",
    async () => {
      assert.deepEqual(await getImdsInterfaces({ baseUrl: emu.httpUrl }), want);
      const res = await fetch(
        `${emu.httpUrl}/metadata/instance/network/interface/0/ipv6?api-version=2021-02-01`,
        { headers: { Metadata: "true" } },
      );
      assert.deepEqual(await res.json(), {
        ipAddress: [
          { privateIpAddress: "fd00:10:240::4", publicIpAddress: "" },
          { privateIpAddress: "fd00:10:240::5", publicIpAddress: "" },
        ],
        subnet: [{ address: "fd00:10:240::", prefix: "64" }],
      });
    },
  );
  await t.step("the other VM's IPv6 is the next free one", async () => {
    const nics = await getImdsInterfaces({
      baseUrl: emu.httpUrl,
      fetch: (input, init) =>
        fetch(input, {
          ...init,
          headers: { ...init?.headers, "x-emulator-vm": "vm1" },
        }),
    });
    assert.deepEqual(
      nics[0]?.subnets.map((s) => s.addresses.map((a) => a.address)),
      [["10.240.0.7"], ["fd00:10:240::6"]],
    );
  });
});

Deno.test("startEmulator() answers an IPv4-only NIC byte for byte as before IPv6", async () => {
  const state = emptyState();
  addVm(state, {
    name: "vm0",
    macAddress: "000D3AF9DCA6",
    ipConfigCount: 2,
  });
  await using emu = await startEmulator({ state, tls });
  assert.equal(
    await (await fetch(`${emu.httpUrl}${WIRE}`)).text(),
    '<?xml version="1.0" encoding="utf-8"?>\n<Interfaces>\n' +
      '  <Interface MacAddress="000D3AF9DCA6" IsPrimary="true">\n' +
      '    <IPSubnet Prefix="10.240.0.0/16">\n' +
      '      <IPAddress Address="10.240.0.4" IsPrimary="true"/>\n' +
      '      <IPAddress Address="10.240.0.5" IsPrimary="false"/>\n' +
      "    </IPSubnet>\n  </Interface>\n</Interfaces>\n",
  );
  const imds = await fetch(
    `${emu.httpUrl}/metadata/instance/network?api-version=2021-02-01`,
    { headers: { Metadata: "true" } },
  );
  assert.equal(
    await imds.text(),
    '{"interface":[{"ipv4":{"ipAddress":[' +
      '{"privateIpAddress":"10.240.0.4","publicIpAddress":""},' +
      '{"privateIpAddress":"10.240.0.5","publicIpAddress":""}],' +
      '"subnet":[{"address":"10.240.0.0","prefix":"16"}]},' +
      '"ipv6":{"ipAddress":[]},"macAddress":"000D3AF9DCA6"}]}',
  );
  using client = Deno.createHttpClient({ caCerts: [tls.caCert] });
  const arm = await armSession(emu, client, "vm0");
  const nic = await arm.get();
  assert.deepEqual(
    nic.properties.ipConfigurations.map((
      c: { properties: { privateIPAddressVersion: string } },
    ) => c.properties.privateIPAddressVersion),
    ["IPv4", "IPv4"],
  );
  assert.doesNotMatch(JSON.stringify(emu.state), /IPv6|ipv6/);
});

Deno.test("startEmulator() ARM PUT round-trips IPv6 ipconfigs", async (t) => {
  const state = dualStackWorld();
  addVm(state, { name: "v4only", subnet: { prefix: "10.9.0.0/24" } });
  addVm(state, {
    name: "tiny",
    subnet: { prefix: "10.8.0.0/24", ipv6Prefix: "fd00:8::/124" },
    ipv6ConfigCount: 11,
  });
  await using persisted = await startPersisted(state, {
    retryAfterSeconds: 0,
  });
  const { emu } = persisted;
  using client = Deno.createHttpClient({ caCerts: [tls.caCert] });
  function v6(name: string, subnet: unknown, extra = {}) {
    return {
      name,
      properties: {
        privateIPAllocationMethod: "Dynamic",
        privateIPAddressVersion: "IPv6",
        subnet,
        primary: false,
        ...extra,
      },
    };
  }
  await t.step("GET shows IPv6 ipconfigs with their version", async () => {
    const nic = await (await armSession(emu, client, "vm0")).get();
    assert.deepEqual(
      nic.properties.ipConfigurations.map((
        c: { name: string; properties: Record<string, unknown> },
      ) => [
        c.name,
        c.properties.privateIPAddress,
        c.properties.privateIPAddressVersion,
        c.properties.primary,
      ]),
      [
        ["ipconfig1", "10.240.0.4", "IPv4", true],
        ["ipconfig2", "10.240.0.5", "IPv4", false],
        ["ipconfig3", "10.240.0.6", "IPv4", false],
        ["ipv6config1", "fd00:10:240::4", "IPv6", false],
        ["ipv6config2", "fd00:10:240::5", "IPv6", false],
      ],
    );
  });
  await t.step(
    "a new IPv6 ipconfig without an address gets the lowest free",
    async () => {
      const arm = await armSession(emu, client, "vm0");
      const configs = (await arm.get()).properties.ipConfigurations;
      const subnet = configs[0].properties.subnet;
      const done = await arm.putAndWait([
        ...configs,
        v6("ipv6config3", subnet),
        v6("ipv6static", subnet, {
          privateIPAllocationMethod: "Static",
          privateIPAddress: "FD00:10:240:0:0:0:0:99",
        }),
      ]);
      assert.equal(done.status, "Succeeded");
      const wire = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
      // vm1 holds ::6, so the new one is ::7; the static one is canonical.
      assert.deepEqual(wire[0]?.subnets[1]?.addresses, [
        { address: "fd00:10:240::4", isPrimary: true },
        { address: "fd00:10:240::5", isPrimary: false },
        { address: "fd00:10:240::7", isPrimary: false },
        { address: "fd00:10:240::99", isPrimary: false },
      ]);
      const onDisk = JSON.parse(await Deno.readTextFile(persisted.stateFile));
      assert.deepEqual(onDisk.vms[0].nic.ipConfigurations[5], {
        name: "ipv6config3",
        privateIPAddress: "fd00:10:240::7",
        privateIPAddressVersion: "IPv6",
        primary: false,
        allocation: "Dynamic",
      });
    },
  );
  await t.step("removing IPv6 ipconfigs frees their addresses", async () => {
    const arm = await armSession(emu, client, "vm0");
    const configs = (await arm.get()).properties.ipConfigurations;
    const kept = configs.filter((c: { name: string }) =>
      c.name !== "ipv6config2" && c.name !== "ipv6static"
    );
    assert.equal((await arm.putAndWait(kept)).status, "Succeeded");
    const imds = await getImdsInterfaces({ baseUrl: emu.httpUrl });
    assert.deepEqual(imds[0]?.subnets[1]?.addresses.map((a) => a.address), [
      "fd00:10:240::4",
      "fd00:10:240::7",
    ]);
  });
  const refusals: Array<[string, string, (c: unknown[]) => unknown[], string]> =
    [
      [
        "IPv6 in a subnet without an IPv6 prefix",
        "v4only",
        (c) => [...c, v6("ipv6config1", (c[0] as Cfg).properties.subnet)],
        "SubnetHasNoIPv6AddressPrefix",
      ],
      [
        "an IPv6 primary",
        "vm1",
        (c) => [
          {
            ...(c[0] as Cfg),
            properties: { ...(c[0] as Cfg).properties, primary: false },
          },
          v6("ipv6new", (c[0] as Cfg).properties.subnet, { primary: true }),
        ],
        "PrimaryIpConfigurationMustBeIPv4",
      ],
      [
        "an unknown version",
        "vm1",
        (c) => [
          ...c,
          v6("x", (c[0] as Cfg).properties.subnet, {
            privateIPAddressVersion: "IPv5",
          }),
        ],
        "InvalidRequestContent",
      ],
      [
        "a static IPv6 address outside the IPv6 prefix",
        "vm1",
        (c) => [
          ...c,
          v6("x", (c[0] as Cfg).properties.subnet, {
            privateIPAllocationMethod: "Static",
            privateIPAddress: "fd00:99::5",
          }),
        ],
        "PrivateIPAddressNotInSubnet",
      ],
    ];
  for (const [name, vmName, change, code] of refusals) {
    await t.step(`400 ${code} for ${name}`, async () => {
      const arm = await armSession(emu, client, vmName);
      const before = await arm.get();
      const res = await arm.put(change(before.properties.ipConfigurations));
      assert.equal(res.status, 400);
      assert.equal((await res.json()).error.code, code);
      assert.deepEqual(await arm.get(), before);
    });
  }
  await t.step(
    "a full IPv6 /124 fails SubnetIsFull and keeps the NIC",
    async () => {
      const arm = await armSession(emu, client, "tiny");
      const configs = (await arm.get()).properties.ipConfigurations;
      // Hosts ::4..::e of the /124: ::0-::3 and the last (::f) are Azure's.
      assert.equal(configs.length, 12);
      assert.equal(configs[1].properties.privateIPAddress, "fd00:8::4");
      assert.equal(configs[11].properties.privateIPAddress, "fd00:8::e");
      const done = await arm.putAndWait([
        ...configs,
        v6("ipv6config12", configs[0].properties.subnet),
      ]);
      assert.equal(done.status, "Failed");
      assert.equal(done.error.code, "SubnetIsFull");
      assert.match(done.error.message, /fd00:8::\/124/);
      assert.equal(
        (await arm.get()).properties.ipConfigurations.length,
        12,
      );
    },
  );
});

type Cfg = { properties: { subnet: unknown } & Record<string, unknown> };
