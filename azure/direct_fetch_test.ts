import assert from "node:assert/strict";
import { directFetch } from "./direct_fetch.ts";
import { startSilentServer, startTestServer } from "./_test_server.ts";

const REPO_ROOT = new URL("..", import.meta.url).pathname;

/** A NIC document with this MAC, in the wireserver's XML or IMDS's JSON. */
function nicDocument(path: string, mac: string): Response {
  if (path.startsWith("/metadata/")) {
    return Response.json([{
      macAddress: mac,
      ipv4: {
        ipAddress: [{ privateIpAddress: "10.240.0.4" }],
        subnet: [{ address: "10.240.0.0", prefix: "16" }],
      },
    }]);
  }
  return new Response(
    `<Interfaces><Interface MacAddress="${mac}" IsPrimary="true"/></Interfaces>`,
    { headers: { "content-type": "text/xml" } },
  );
}

/** Variables that would send a plain fetch through a proxy. */
const PROXY_VARIABLES = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

Deno.test("getInterfaceInfo() and getImdsInterfaces() never go through a proxy, whatever HTTP_PROXY, http_proxy or ALL_PROXY say", async (t) => {
  await using proxy = startTestServer((req) =>
    nicDocument(new URL(req.url).pathname, "0000DEADBEEF")
  );
  await using host = startTestServer((req) =>
    nicDocument(new URL(req.url).pathname, "000D3AF9DCA6")
  );
  // A fresh process for each: Deno reads the variables when it makes its
  // HTTP client.
  const code = `
    import { getImdsInterfaces, getInterfaceInfo } from "./azure/mod.ts";
    const wire = await getInterfaceInfo({
      url: "${host.url}/machine/plugins?comp=nmagent&type=getinterfaceinfov1",
      retries: 0,
    });
    const imds = await getImdsInterfaces({ baseUrl: "${host.url}", retries: 0 });
    console.log(JSON.stringify([wire[0]?.macAddress, imds[0]?.macAddress]));
  `;
  const env = Deno.env.toObject();
  for (const name of [...PROXY_VARIABLES, "NO_PROXY", "no_proxy"]) {
    delete env[name];
  }
  for (const variable of PROXY_VARIABLES) {
    await t.step(variable, async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", code],
        cwd: REPO_ROOT,
        clearEnv: true,
        env: { ...env, [variable]: proxy.url },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      assert.deepEqual(
        JSON.parse(new TextDecoder().decode(out.stdout)),
        ["000d3af9dca6", "000d3af9dca6"],
      );
      assert.deepEqual(proxy.requests.map((r) => r.url), []);
      assert.equal(host.requests.length, 2);
      host.requests.length = 0;
    });
  }
});

Deno.test("directFetch() without a proxy variable sends the usual request line", async () => {
  // The absolute URL in the request line is only for a proxied environment;
  // otherwise the request is what a plain fetch sends.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const lines = (async () => {
    using conn = await listener.accept();
    const buf = new Uint8Array(4096);
    const n = await conn.read(buf) ?? 0;
    await conn.write(
      new TextEncoder().encode(
        "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
      ),
    );
    return new TextDecoder().decode(buf.subarray(0, n)).split("\r\n");
  })();
  const env = Deno.env.toObject();
  for (const name of PROXY_VARIABLES) delete env[name];
  const url = `http://127.0.0.1:${listener.addr.port}/machine/plugins?comp=x`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { directFetch } from "./azure/direct_fetch.ts";
       console.log(await (await directFetch("${url}")).text());`,
    ],
    cwd: REPO_ROOT,
    clearEnv: true,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  listener.close();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "ok");
  assert.equal((await lines)[0], "GET /machine/plugins?comp=x HTTP/1.1");
});

Deno.test("directFetch() returns the status, headers and body of the host", async () => {
  await using srv = startTestServer((req) =>
    new Response(`seen ${req.method} ${new URL(req.url).pathname}`, {
      status: 503,
      headers: { "retry-after": "2", "x-ms-request-id": "rid" },
    })
  );
  const res = await directFetch(`${srv.url}/machine/plugins?comp=x`, {
    headers: { Metadata: "true" },
  });
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "2");
  assert.equal(res.headers.get("x-ms-request-id"), "rid");
  assert.equal(await res.text(), "seen GET /machine/plugins");
  assert.equal(srv.requests[0]?.headers.get("metadata"), "true");
  assert.equal(srv.requests[0]?.headers.get("host"), new URL(srv.url).host);
});

Deno.test("directFetch() reaches an IPv6 literal host", async () => {
  const server = Deno.serve(
    { hostname: "::1", port: 0, onListen() {} },
    () => new Response("v6"),
  );
  try {
    const res = await directFetch(`http://[::1]:${server.addr.port}/`);
    assert.equal(await res.text(), "v6");
  } finally {
    await server.shutdown();
  }
});

Deno.test("directFetch() refuses anything but http", async () => {
  await assert.rejects(directFetch("https://127.0.0.1:1/"), {
    name: "TypeError",
    message:
      /^Cannot fetch "https:\/\/127\.0\.0\.1:1\/" directly: only http URLs/,
  });
});

Deno.test("directFetch() stops at the signal", async () => {
  await using srv = startSilentServer();
  await assert.rejects(
    directFetch(srv.url, { signal: AbortSignal.timeout(30) }),
    { name: "TimeoutError" },
  );
});
