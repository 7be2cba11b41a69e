import assert from "node:assert/strict";
import { runStateCli } from "./cli.ts";

async function show(argv: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await runStateCli(["show", ...argv], {
    out: (s) => out += s,
    err: (s) => out += s,
  });
  return { code, out };
}

Deno.test("state show reads the agent's /v1 documents when the agent runs, the files otherwise", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "state-show-" });
  const endpoints = [{
    network: "azure",
    containerId: "c1",
    ifName: "eth0",
    address: "10.0.0.5/24",
    addresses: ["10.0.0.5/24"],
    mac: "aa:bb:cc:dd:ee:ff",
    hostVeth: "azv0123456789a",
    netns: "/var/run/netns/p",
    ageSeconds: 7,
  }];
  const pool = {
    lastRefresh: 1,
    pools: [{
      subnet: "10.0.0.0/24",
      counts: { in_use: 1, free: 1, stale: 0 },
      addresses: [
        {
          address: "10.0.0.5",
          state: "in_use",
          containerId: "c1",
          ifName: "eth0",
        },
        { address: "10.0.0.6", state: "free" },
      ],
    }],
  };
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const path = new URL(req.url).pathname;
      if (path === "/v1/endpoints") return Response.json(endpoints);
      if (path === "/v1/pool") return Response.json(pool);
      return new Response("no", { status: 404 });
    },
  );
  const url = `http://127.0.0.1:${http.addr.port}`;
  const socket = Deno.listen({
    transport: "unix",
    path: `${dir}/azure-vnet-agent.sock`,
  });
  try {
    await t.step("agent running: its endpoints and pool", async () => {
      const r = await show(["--state-dir", dir, "--agent-url", url]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^SOURCE\tagent http:\/\/127\.0\.0\.1:\d+\n/);
      assert.match(
        r.out,
        /\nc1\tazure\teth0\t10\.0\.0\.5\/24\taa:bb:cc:dd:ee:ff\tazv0123456789a\t7\n/,
      );
      assert.match(r.out, /POOL 10\.0\.0\.0\/24\tin_use 1\tfree 1\tstale 0/);
      assert.match(r.out, /\n10\.0\.0\.6\tfree\t-\t-\t-\n/);
      const j = await show(["--state-dir", dir, "--agent-url", url, "--json"]);
      const doc = JSON.parse(j.out);
      assert.equal(doc.source, "agent");
      assert.deepEqual(doc.endpoints, endpoints);
      assert.deepEqual(doc.pool, pool);
    });
    await t.step(
      "--files: the state files even with the agent up",
      async () => {
        const r = await show([
          "--state-dir",
          dir,
          "--agent-url",
          url,
          "--files",
        ]);
        assert.equal(r.code, 0, r.out);
        assert.match(r.out, /^NETWORK\t/);
      },
    );
    await http.shutdown();
    await t.step("agent socket there but no answer: the files", async () => {
      const r = await show(["--state-dir", dir, "--agent-url", url]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /^NETWORK\t/);
    });
  } finally {
    socket.close();
    await http.shutdown().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
