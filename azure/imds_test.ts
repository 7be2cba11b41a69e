import assert from "node:assert/strict";
import { IpamEngine } from "@vnet/ipam";
import { ipamConfig } from "../ipam/_testing.ts";
import { getImdsInstance, getImdsInterfaces } from "./imds.ts";
import { recordingSleep, startTestServer } from "./_test_server.ts";

const NETWORK = [
  {
    ipv4: {
      ipAddress: [
        { privateIpAddress: "10.240.0.4", publicIpAddress: "" },
        { privateIpAddress: "10.240.0.5", publicIpAddress: "" },
      ],
      subnet: [{ address: "10.240.0.0", prefix: "16" }],
    },
    ipv6: { ipAddress: [] },
    macAddress: "000D3AF9DCA6",
  },
  {
    ipv4: {
      ipAddress: [{ privateIpAddress: "10.241.0.4", publicIpAddress: "" }],
      subnet: [{ address: "10.241.0.0", prefix: "24" }],
    },
    ipv6: { ipAddress: [] },
    macAddress: "000D3AF9DC11",
  },
];

const COMPUTE = {
  location: "westus2",
  name: "vm0",
  resourceGroupName: "rg",
  resourceId:
    "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm0",
  subscriptionId: "sub",
  vmScaleSetName: "",
  vmSize: "Standard_D2s_v3",
};

/** A small IMDS that insists on `Metadata: true`, like the real one. */
function imds(req: Request): Response {
  if (req.headers.get("metadata") !== "true") {
    return Response.json({
      error: "invalid_request",
      error_description: "Required metadata header not specified",
    }, { status: 400 });
  }
  const url = new URL(req.url);
  if (url.pathname === "/metadata/instance/network/interface") {
    return Response.json(NETWORK);
  }
  if (url.pathname === "/metadata/instance") {
    return Response.json({ compute: COMPUTE, network: { interface: NETWORK } });
  }
  return new Response("not found", { status: 404 });
}

Deno.test("getImdsInterfaces() maps IMDS NICs to HostInterface", async () => {
  await using srv = startTestServer(imds);
  const nics = await getImdsInterfaces({ baseUrl: srv.url });
  assert.deepEqual(nics, [
    {
      macAddress: "000d3af9dca6",
      isPrimary: true,
      subnets: [{
        prefix: "10.240.0.0/16",
        addresses: [
          { address: "10.240.0.4", isPrimary: true },
          { address: "10.240.0.5", isPrimary: false },
        ],
      }],
    },
    {
      macAddress: "000d3af9dc11",
      isPrimary: false,
      subnets: [{
        prefix: "10.241.0.0/24",
        addresses: [{ address: "10.241.0.4", isPrimary: true }],
      }],
    },
  ]);
  const url = new URL(srv.requests[0]?.url ?? "");
  assert.equal(url.searchParams.get("api-version"), "2021-02-01");
  assert.equal(url.searchParams.get("format"), "json");
  assert.equal(srv.requests[0]?.headers.get("metadata"), "true");
});

Deno.test("getImdsInterfaces() reads ipv6.ipAddress[] into the /64 of each address, primary first", async () => {
  const dual = [{
    ...NETWORK[0],
    ipv6: {
      ipAddress: [
        { privateIpAddress: "fd00:db8:deca:deed::4" },
        { privateIpAddress: "fd00:db8:deca:deed::5" },
        { privateIpAddress: "fd00:db8:deca:deed:0:0:0:6" },
      ],
    },
  }];
  await using srv = startTestServer(() => Response.json(dual));
  const [nic] = await getImdsInterfaces({ baseUrl: srv.url });
  assert.deepEqual(nic?.subnets[1], {
    prefix: "fd00:db8:deca:deed::/64",
    addresses: [
      { address: "fd00:db8:deca:deed::4", isPrimary: true },
      { address: "fd00:db8:deca:deed::5", isPrimary: false },
      { address: "fd00:db8:deca:deed:0:0:0:6", isPrimary: false },
    ],
  });
  assert.equal(nic?.subnets[0]?.prefix, "10.240.0.0/16");
  assert.equal(nic?.subnets.length, 2);
});

Deno.test("getImdsInterfaces() takes an ipv6.subnet[] when one is listed", async () => {
  const dual = [{
    macAddress: "000D3AF9DCA6",
    ipv6: {
      ipAddress: [{ privateIpAddress: "fd00:1::4" }],
      subnet: [{ address: "fd00:1::", prefix: "80" }],
    },
  }];
  await using srv = startTestServer(() => Response.json(dual));
  const [nic] = await getImdsInterfaces({ baseUrl: srv.url });
  assert.deepEqual(nic?.subnets, [{
    prefix: "fd00:1::/80",
    addresses: [{ address: "fd00:1::4", isPrimary: true }],
  }]);
});

Deno.test("getImdsInstance() returns compute fields and NICs", async () => {
  await using srv = startTestServer(imds);
  const inst = await getImdsInstance({
    baseUrl: `${srv.url}/`,
    apiVersion: "2019-03-11",
  });
  assert.deepEqual(inst.compute, {
    subscriptionId: "sub",
    resourceGroupName: "rg",
    resourceId: COMPUTE.resourceId,
    name: "vm0",
    location: "westus2",
    vmScaleSetName: "",
  });
  assert.equal(inst.network.length, 2);
  assert.equal(
    new URL(srv.requests[0]?.url ?? "").searchParams.get("api-version"),
    "2019-03-11",
  );
});

Deno.test("getImdsInterfaces() fails with 400 invalid_request when IMDS wants the Metadata header", async () => {
  await using srv = startTestServer((req) => {
    const stripped = new Request(req.url);
    return imds(stripped);
  });
  await assert.rejects(getImdsInterfaces({ baseUrl: srv.url }), {
    name: "AzureHttpError",
    status: 400,
    serviceCode: "invalid_request",
    transient: false,
    message: /HTTP 400/,
  });
  assert.equal(srv.requests.length, 1);
});

Deno.test("getImdsInterfaces() returns [] for an empty interface list", async () => {
  await using srv = startTestServer(() => Response.json([]));
  assert.deepEqual(await getImdsInterfaces({ baseUrl: srv.url }), []);
});

Deno.test("getImdsInterfaces() throws SyntaxError on malformed bodies", async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ["not JSON", "{", /Cannot parse IMDS network interface JSON/],
    ["object", "{}", /not an array/],
    ["bad MAC", '[{"macAddress":"zz"}]', /macAddress/],
    [
      "number field",
      '[{"macAddress":"000D3AF9DCA6","ipv4":{"subnet":[{"address":10,"prefix":"8"}]}}]',
      /not a string/,
    ],
    [
      "IPv4 text in ipv6",
      '[{"macAddress":"000D3AF9DCA6","ipv6":{"ipAddress":[{"privateIpAddress":"10.0.0.4"}]}}]',
      /"10\.0\.0\.4" is no IPv6 address/,
    ],
    [
      "address without subnet",
      '[{"macAddress":"000D3AF9DCA6","ipv4":{"ipAddress":[{"privateIpAddress":"10.0.0.4"}],"subnet":[]}}]',
      /has no subnet/,
    ],
  ];
  for (const [name, body, message] of cases) {
    await t.step(name, async () => {
      await using srv = startTestServer(() => new Response(body));
      await assert.rejects(getImdsInterfaces({ baseUrl: srv.url }), {
        name: "SyntaxError",
        message,
      });
    });
  }
});

Deno.test("getImdsInstance() retries 429 and 500", async () => {
  await using srv = startTestServer((req, n) =>
    n === 0
      ? new Response("", { status: 429, headers: { "retry-after": "2" } })
      : n === 1
      ? new Response("", { status: 500 })
      : imds(req)
  );
  const { delays, sleep } = recordingSleep();
  const inst = await getImdsInstance({ baseUrl: srv.url, sleep });
  assert.equal(inst.compute.name, "vm0");
  assert.deepEqual(delays, [2000, 500]);
});

Deno.test("getImdsInterfaces() retries 410 and 404, as IMDS answers while the VM starts", async () => {
  await using srv = startTestServer((req, n) =>
    n === 0
      ? Response.json({ error: "gone" }, { status: 410 })
      : n === 1
      ? new Response("not found", { status: 404 })
      : imds(req)
  );
  const { delays, sleep } = recordingSleep();
  const nics = await getImdsInterfaces({ baseUrl: srv.url, sleep });
  assert.equal(nics.length, 2);
  assert.deepEqual(delays, [250, 500]);
  assert.equal(srv.requests.length, 3);
});

Deno.test("getImdsInstance() reports a lasting 410 as a transient AzureHttpError", async () => {
  await using srv = startTestServer(() =>
    Response.json({ error: "gone" }, { status: 410 })
  );
  const { sleep } = recordingSleep();
  await assert.rejects(getImdsInstance({ baseUrl: srv.url, sleep }), {
    name: "AzureHttpError",
    status: 410,
    transient: true,
    message: /HTTP 410/,
  });
  assert.equal(srv.requests.length, 3);
});

Deno.test("IpamEngine.reserve() on a fresh node fails with 11 (try again later), not 101, while IMDS answers 410 or 404", async (t) => {
  for (const status of [410, 404]) {
    await t.step(`HTTP ${status}`, async () => {
      await using srv = startTestServer(() => new Response("", { status }));
      const dir = await Deno.makeTempDir();
      try {
        const engine = new IpamEngine({
          stateDir: dir,
          hostMacs: () => [{ name: "eth0", mac: "000d3af9dca6" }],
          sleep: () => Promise.resolve(),
        });
        const config = ipamConfig({ environment: "imds", imdsUrl: srv.url });
        await assert.rejects(
          engine.reserve({ containerId: "c1", ifName: "eth0" }, { config }),
          {
            name: "CniError",
            code: 11,
            message: /Cannot get the host's addresses/,
          },
        );
        assert.equal(srv.requests.length, 3, "the first try and 2 retries");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
});
