import assert from "node:assert/strict";
import { encodeFrame, MAX_REQUEST_BYTES, readFrame } from "@vnet/forward";
import { probeAgent } from "./probe.ts";
import { AgentServer, type ServedPlugin } from "./server.ts";

const PLUGIN: ServedPlugin = {
  handlers: {
    cmdAdd: () => Promise.reject(new Error("not in a probe")),
    cmdDel: () => Promise.reject(new Error("not in a probe")),
  },
  info: { name: "demo", version: "0.1.0" },
};

/** A raw listener on `<dir>/a.sock` whose connections `serve` handles. */
async function withListener(
  serve: (conn: Deno.Conn) => Promise<void>,
  body: (path: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/a.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const conns: Deno.Conn[] = [];
  const served: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.push(conn);
      served.push(serve(conn).catch(() => {}));
    }
  })();
  try {
    await body(path);
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // Closed by serve().
      }
    }
    await Promise.all(served);
    await Deno.remove(dir, { recursive: true });
  }
}

/** An agent on `<dir>/azure-vnet-agent.sock`, closed after `body`. */
async function withAgent(
  options: { readiness?: () => string | undefined },
  body: (socketPath: string, server: AgentServer) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const socketPath = `${dir}/azure-vnet-agent.sock`;
  const server = await AgentServer.listen({
    socketPath,
    stateDir: dir,
    plugins: { "azure-vnet": PLUGIN, "azure-vnet-ipam": PLUGIN },
    ...options,
  });
  try {
    await body(socketPath, server);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("probeAgent() passes when the agent answers a VERSION request", async () => {
  let socketPath = "";
  await withAgent({}, async (path, server) => {
    socketPath = path;
    const r = await probeAgent(socketPath);
    assert.ok(r.ok, r.message);
    assert.match(r.message, /answers \(CNI .*1\.0\.0/);
    assert.equal(server.served, 1);
  });
  const gone = await probeAgent(socketPath);
  assert.ok(!gone.ok);
  assert.match(gone.message, /no socket at /);
});

Deno.test("probeAgent() fails for an agent that accepts but never answers", async () => {
  await withListener(
    async (conn) => {
      // Reads the request, then holds the connection without a reply
      // until the probe gives up and closes it.
      await readFrame(conn, MAX_REQUEST_BYTES);
      await conn.read(new Uint8Array(1));
    },
    async (path) => {
      const t0 = performance.now();
      const r = await probeAgent(path, { timeoutMs: 200 });
      assert.ok(!r.ok);
      assert.match(r.message, /no answer from .* in 200 ms/);
      assert.ok(performance.now() - t0 < 1500);
    },
  );
});

Deno.test("probeAgent() fails for a failed or empty answer", async (t) => {
  await t.step("code 1", async () => {
    await withListener(
      async (conn) => {
        await readFrame(conn, MAX_REQUEST_BYTES);
        await conn.write(encodeFrame({ code: 1, stdout: '{"code":4}' }));
        conn.close();
      },
      async (path) => {
        const r = await probeAgent(path);
        assert.ok(!r.ok);
        assert.match(r.message, /with code 1/);
      },
    );
  });
  await t.step("closed without a reply", async () => {
    await withListener(
      async (conn) => {
        await readFrame(conn, MAX_REQUEST_BYTES);
        conn.close();
      },
      async (path) => {
        const r = await probeAgent(path);
        assert.ok(!r.ok);
        assert.match(r.message, /closed without an answer/);
      },
    );
  });
});

Deno.test("probeAgent({ ready }) fails while the agent is not ready; liveness passes all the same", async () => {
  let reason: string | undefined =
    "reconcile: the startup reconcile failed (busy) after 1 tries; the next in 5 s";
  await withAgent({ readiness: () => reason }, async (socketPath) => {
    const notReady = await probeAgent(socketPath, { ready: true });
    assert.ok(!notReady.ok);
    assert.equal(
      notReady.message,
      `the agent on ${socketPath} answers but is not ready: ${reason}`,
    );
    const live = await probeAgent(socketPath);
    assert.ok(live.ok, live.message);
    reason = undefined;
    const ready = await probeAgent(socketPath, { ready: true });
    assert.ok(ready.ok, ready.message);
    assert.match(ready.message, /answers and is ready \(CNI /);
  });
});

Deno.test("probeAgent({ ready }) passes an agent that knows no readiness (older, or none given)", async () => {
  await withAgent({}, async (socketPath) => {
    assert.ok((await probeAgent(socketPath, { ready: true })).ok);
  });
});
