import assert from "node:assert/strict";
import { fetchText, parseRetryAfter, serviceCodeOf } from "./retry.ts";
import {
  recordingSleep,
  startSilentServer,
  startTestServer,
} from "./_test_server.ts";

Deno.test("fetchText() retries 500 then returns the 200 body", async () => {
  await using srv = startTestServer((_req, n) =>
    n === 0
      ? new Response("<Error><Code>InternalError</Code></Error>", {
        status: 500,
      })
      : new Response("ok")
  );
  const { delays, sleep } = recordingSleep();
  const { body } = await fetchText(srv.url, { sleep });
  assert.equal(body, "ok");
  assert.equal(srv.requests.length, 2);
  assert.deepEqual(delays, [250]);
});

Deno.test("fetchText() honours Retry-After on 429", async () => {
  await using srv = startTestServer((_req, n) =>
    n < 2
      ? new Response("slow down", {
        status: 429,
        headers: { "retry-after": "3" },
      })
      : new Response("ok")
  );
  const { delays, sleep } = recordingSleep();
  const { body } = await fetchText(srv.url, { sleep });
  assert.equal(body, "ok");
  assert.deepEqual(delays, [3000, 3000]);
});

Deno.test("fetchText() caps Retry-After by maxDelayMs", async () => {
  await using srv = startTestServer((_req, n) =>
    n === 0
      ? new Response("", { status: 429, headers: { "retry-after": "100" } })
      : new Response("ok")
  );
  const { delays, sleep } = recordingSleep();
  await fetchText(srv.url, { sleep, maxDelayMs: 1000 });
  assert.deepEqual(delays, [1000]);
});

Deno.test("parseRetryAfter() reads delta seconds and HTTP dates", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");
  assert.equal(parseRetryAfter("Wed, 01 Jan 2025 00:00:05 GMT", now), 5000);
  assert.equal(parseRetryAfter("soon", now), undefined);
});

Deno.test("fetchText() throws a transient AzureHttpError after the last retry", async () => {
  await using srv = startTestServer(() =>
    Response.json({ error: { code: "Busy" } }, {
      status: 503,
      headers: { "x-ms-request-id": "rid-1" },
    })
  );
  const { delays, sleep } = recordingSleep();
  await assert.rejects(fetchText(srv.url, { sleep, retries: 2 }), {
    name: "AzureHttpError",
    message: /HTTP 503/,
    status: 503,
    transient: true,
    serviceCode: "Busy",
    requestId: "rid-1",
  });
  assert.equal(srv.requests.length, 3);
  assert.deepEqual(delays, [250, 500]);
});

Deno.test("fetchText() fails at once on 404 (not transient)", async () => {
  await using srv = startTestServer(() => new Response("no", { status: 404 }));
  await assert.rejects(fetchText(srv.url, { sleep: () => Promise.resolve() }), {
    name: "AzureHttpError",
    message: /HTTP 404/,
    status: 404,
    transient: false,
  });
  assert.equal(srv.requests.length, 1);
});

Deno.test("fetchText() times out each attempt and reports status 0", async () => {
  await using srv = startSilentServer();
  const { sleep } = recordingSleep();
  await assert.rejects(
    fetchText(srv.url, { sleep, timeoutMs: 50, retries: 1 }),
    {
      name: "AzureHttpError",
      message: /timed out after 50 ms/,
      status: 0,
      transient: true,
    },
  );
  assert.equal(srv.requests.length, 2);
});

Deno.test("fetchText() reports a network failure as status 0", async () => {
  const srv = startTestServer(() => new Response("x"));
  const url = srv.url;
  await srv[Symbol.asyncDispose]();
  await assert.rejects(fetchText(url, { retries: 0 }), {
    name: "AzureHttpError",
    message: /network failure/,
    status: 0,
    transient: true,
  });
});

Deno.test("serviceCodeOf() reads XML and JSON error bodies", () => {
  assert.equal(serviceCodeOf('{"error":"invalid_request"}'), "invalid_request");
  assert.equal(serviceCodeOf("garbage"), undefined);
});
