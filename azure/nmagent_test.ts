import assert from "node:assert/strict";
import { getInterfaceInfo, parseInterfaceInfo } from "./nmagent.ts";
import {
  recordingSleep,
  startSilentServer,
  startTestServer,
} from "./_test_server.ts";

const GOOD = `<?xml version="1.0" encoding="utf-8"?>
<Interfaces>
  <Interface MacAddress="000D3AF9DCA6" IsPrimary="true">
    <IPSubnet Prefix="10.240.0.0/16">
      <IPAddress Address="10.240.0.4" IsPrimary="true"/>
      <IPAddress Address="10.240.0.5" IsPrimary="false"/>
      <IPAddress Address="10.240.0.6" IsPrimary="False"/>
    </IPSubnet>
  </Interface>
  <Interface MacAddress="*" IsPrimary="0" Unknown="x">
    <Extra/>
    <IPSubnet Prefix="10.241.0.0/16">
      <IPAddress Address="10.241.0.4" IsPrimary="T"/>
      <IPAddress Address="10.241.0.5"/>
    </IPSubnet>
    <IPSubnet Prefix="10.242.0.0/24"/>
  </Interface>
</Interfaces>`;

function xmlResponse(body: string, status = 200): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/xml" },
  });
}

Deno.test("getInterfaceInfo() parses the document served over HTTP", async () => {
  await using srv = startTestServer(() => xmlResponse(GOOD));
  const nics = await getInterfaceInfo({
    url: `${srv.url}/machine/plugins?comp=nmagent&type=getinterfaceinfov1`,
  });
  assert.deepEqual(nics, [
    {
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
    },
    {
      macAddress: "*",
      isPrimary: false,
      subnets: [
        {
          prefix: "10.241.0.0/16",
          addresses: [
            { address: "10.241.0.4", isPrimary: true },
            { address: "10.241.0.5", isPrimary: false },
          ],
        },
        { prefix: "10.242.0.0/24", addresses: [] },
      ],
    },
  ]);
  const req = srv.requests[0];
  assert.equal(req?.method, "GET");
  assert.equal(
    new URL(req?.url ?? "").search,
    "?comp=nmagent&type=getinterfaceinfov1",
  );
});

Deno.test("parseInterfaceInfo() reads an IPSubnet with an IPv6 Prefix like an IPv4 one", () => {
  const xml = `<Interfaces>
  <Interface MacAddress="000D3AF9DCA6" IsPrimary="true">
    <IPSubnet Prefix="10.240.0.0/16">
      <IPAddress Address="10.240.0.4" IsPrimary="true"/>
    </IPSubnet>
    <IPSubnet Prefix="fd00:db8:deca:deed::/64">
      <IPAddress Address="fd00:db8:deca:deed::4" IsPrimary="true"/>
      <IPAddress Address="fd00:db8:deca:deed::5" IsPrimary="false"/>
    </IPSubnet>
  </Interface>
</Interfaces>`;
  assert.deepEqual(parseInterfaceInfo(xml)[0]?.subnets[1], {
    prefix: "fd00:db8:deca:deed::/64",
    addresses: [
      { address: "fd00:db8:deca:deed::4", isPrimary: true },
      { address: "fd00:db8:deca:deed::5", isPrimary: false },
    ],
  });
});

Deno.test("parseInterfaceInfo() returns an empty list for <Interfaces/>", async (t) => {
  for (
    const xml of [
      "<Interfaces/>",
      '<?xml version="1.0"?>\n<Interfaces></Interfaces>',
    ]
  ) {
    await t.step(xml, () => assert.deepEqual(parseInterfaceInfo(xml), []));
  }
});

Deno.test("parseInterfaceInfo() throws SyntaxError when the document is bad", async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ["empty body", "", /Cannot parse interface info XML/],
    [
      "truncated",
      '<Interfaces><Interface MacAddress="000D3AF9DCA6">',
      /Cannot parse interface info XML/,
    ],
    ["HTML", "<html><body>oops</body></html>", /root is "html"/],
    [
      "error document",
      "<Error><Code>InternalError</Code></Error>",
      /root is "Error"/,
    ],
    [
      "two roots",
      "<Interfaces/><Interfaces/>",
      /Cannot parse interface info XML/,
    ],
    [
      "bad boolean",
      '<Interfaces><Interface MacAddress="000D3AF9DCA6" IsPrimary="yes"/></Interfaces>',
      /"yes" as a boolean/,
    ],
    [
      "bad MAC",
      '<Interfaces><Interface MacAddress="00:0D"/></Interfaces>',
      /MAC address "00:0D"/,
    ],
    ["missing MAC", "<Interfaces><Interface/></Interfaces>", /MAC address ""/],
  ];
  for (const [name, xml, message] of cases) {
    await t.step(name, () =>
      assert.throws(() => parseInterfaceInfo(xml), {
        name: "SyntaxError",
        message,
      }));
  }
});

Deno.test("getInterfaceInfo() rejects a malformed body with SyntaxError, never []", async () => {
  await using srv = startTestServer(() =>
    xmlResponse("<Interfaces><Interface")
  );
  await assert.rejects(getInterfaceInfo({ url: srv.url }), {
    name: "SyntaxError",
    message: /Cannot parse interface info XML/,
  });
});

Deno.test("getInterfaceInfo() retries a 500 error document then succeeds", async () => {
  await using srv = startTestServer((_req, n) =>
    n === 0
      ? xmlResponse(
        "<Error><Code>InternalError</Code><Message>x</Message></Error>",
        500,
      )
      : xmlResponse(GOOD)
  );
  const { delays, sleep } = recordingSleep();
  const nics = await getInterfaceInfo({ url: srv.url, sleep });
  assert.equal(nics.length, 2);
  assert.equal(delays.length, 1);
});

Deno.test("getInterfaceInfo() throws AzureHttpError with the service code", async () => {
  await using srv = startTestServer(() =>
    xmlResponse("<Error><Code>InternalError</Code></Error>", 500)
  );
  const { sleep } = recordingSleep();
  await assert.rejects(getInterfaceInfo({ url: srv.url, sleep, retries: 1 }), {
    name: "AzureHttpError",
    status: 500,
    serviceCode: "InternalError",
    transient: true,
    message: /HTTP 500/,
  });
  assert.equal(srv.requests.length, 2);
});

Deno.test("getInterfaceInfo() honours 429 Retry-After", async () => {
  await using srv = startTestServer((_req, n) =>
    n === 0
      ? new Response("", { status: 429, headers: { "retry-after": "1" } })
      : xmlResponse("<Interfaces/>")
  );
  const { delays, sleep } = recordingSleep();
  assert.deepEqual(await getInterfaceInfo({ url: srv.url, sleep }), []);
  assert.deepEqual(delays, [1000]);
});

Deno.test("getInterfaceInfo() times out a silent server", async () => {
  await using srv = startSilentServer();
  await assert.rejects(
    getInterfaceInfo({ url: srv.url, timeoutMs: 40, retries: 0 }),
    { name: "AzureHttpError", status: 0, message: /timed out/ },
  );
});

Deno.test("getInterfaceInfo() fails at once on 404 and 410: only IMDS retries them", async (t) => {
  for (const status of [404, 410]) {
    await t.step(`HTTP ${status}`, async () => {
      await using srv = startTestServer(() => new Response("", { status }));
      const { sleep } = recordingSleep();
      await assert.rejects(getInterfaceInfo({ url: srv.url, sleep }), {
        name: "AzureHttpError",
        status,
        transient: false,
      });
      assert.equal(srv.requests.length, 1);
    });
  }
});
