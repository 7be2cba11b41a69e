import assert from "node:assert/strict";
import { stdinOf } from "./_test_io.ts";
import { forwardOrRun } from "./forward.ts";
import { decodeRequest, encodeFrame, PROGRESS, readFrame } from "./frame.ts";

const STDIN = '{"cniVersion":"0.4.0","name":"n"}';

/** Reads one request frame. */
async function requestOf(conn: Deno.Conn) {
  const body = await readFrame(conn, 1 << 20);
  assert.ok(body !== undefined, "a request");
  return decodeRequest(body);
}

/** Serves one connection on a socket in a temp dir with `answer`. */
async function withAgent(
  answer: (conn: Deno.Conn) => Promise<void>,
  body: (dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const listener = Deno.listen({
    transport: "unix",
    path: `${dir}/azure-vnet-agent.sock`,
  });
  const served = (async () => {
    const conn = await listener.accept();
    await answer(conn).finally(() => conn.close());
  })();
  try {
    await body(dir);
  } finally {
    await served;
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** Forwards an ADD of {@link STDIN} to the socket in `dir`. */
async function forwardAdd(dir: string): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await forwardOrRun({
    plugin: "azure-vnet",
    env: { CNI_COMMAND: "ADD", AZURE_VNET_STATE_DIR: dir },
    args: [],
    stdin: stdinOf(STDIN),
    stdout: (t) => out += t,
    load: () => Promise.reject(new Error("must not load")),
  });
  return { code, out };
}

Deno.test("forwardOrRun() runs in process when no socket exists, without reading stdin", async () => {
  const dir = await Deno.makeTempDir();
  let loaded = 0;
  const code = await forwardOrRun({
    plugin: "azure-vnet",
    env: { CNI_COMMAND: "ADD", AZURE_VNET_STATE_DIR: dir },
    args: [],
    stdin: { read: () => Promise.reject(new Error("stdin was read")) },
    load: () => {
      loaded++;
      return Promise.resolve(({ env }) =>
        Promise.resolve(env.CNI_COMMAND === "ADD" ? 7 : 0)
      );
    },
  });
  assert.equal(code, 7);
  assert.equal(loaded, 1);
  await Deno.remove(dir);
});

Deno.test("forwardOrRun() runs in process when the socket refuses the connection", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/azure-vnet-agent.sock`;
  Deno.listen({ transport: "unix", path }).close();
  await Deno.writeFile(path, new Uint8Array()).catch(() => {});
  const code = await forwardOrRun({
    plugin: "azure-vnet-ipam",
    env: { CNI_COMMAND: "DEL", AZURE_VNET_STATE_DIR: dir },
    args: [],
    load: () => Promise.resolve(() => Promise.resolve(3)),
  });
  assert.equal(code, 3);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("forwardOrRun() sends env and stdin, prints the reply and never loads the plugin", async () => {
  await withAgent(async (conn) => {
    const body = await readFrame(conn, 1 << 20);
    assert.ok(body !== undefined);
    const req = decodeRequest(body);
    assert.equal(req.plugin, "azure-vnet");
    assert.equal(req.env.CNI_COMMAND, "ADD");
    assert.equal(
      new TextDecoder().decode(Uint8Array.fromBase64(req.stdin)),
      STDIN,
    );
    await conn.write(encodeFrame({ code: 1, stdout: '{"code":7}\n' }));
  }, async (dir) => {
    const { code, out } = await forwardAdd(dir);
    assert.equal(code, 1);
    assert.equal(out, '{"code":7}\n');
  });
});

Deno.test("forwardOrRun() reports code 11 and does not fall back when the agent closes without a reply", async () => {
  await withAgent(async (conn) => {
    await readFrame(conn, 1 << 20);
  }, async (dir) => {
    const { code, out } = await forwardAdd(dir);
    assert.equal(code, 1);
    assert.deepEqual(JSON.parse(out), {
      cniVersion: "0.4.0",
      code: 11,
      msg: "The azure-vnet agent did not answer",
      details: "The agent closed the connection without a reply",
    });
  });
});

Deno.test("forwardOrRun() runs in process, with the stdin it read, when the agent stopped before accepting", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/azure-vnet-agent.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  let got: { env: Record<string, string>; stdin?: Uint8Array } | undefined;
  try {
    const code = await forwardOrRun({
      plugin: "azure-vnet",
      env: { CNI_COMMAND: "ADD", AZURE_VNET_STATE_DIR: dir },
      args: [],
      stdin: stdinOf(STDIN),
      stdout: () => assert.fail("nothing printed by the forwarder"),
      // Connected into the backlog; then the agent stops (SIGTERM) and
      // the kernel resets the connection it never accepted.
      connect: async (p) => {
        const conn = await Deno.connect({ transport: "unix", path: p });
        listener.close();
        return conn;
      },
      load: () =>
        Promise.resolve((io) => {
          got = io;
          return Promise.resolve(9);
        }),
    });
    assert.equal(code, 9);
    assert.equal(got?.env.CNI_COMMAND, "ADD");
    assert.equal(new TextDecoder().decode(got?.stdin), STDIN);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("forwardOrRun() answers --version in process without connecting", async () => {
  const code = await forwardOrRun({
    plugin: "azure-vnet",
    env: { CNI_COMMAND: "ADD" },
    args: ["--version"],
    connect: () => Promise.reject(new Error("must not connect")),
    load: () => Promise.resolve(() => Promise.resolve(0)),
  });
  assert.equal(code, 0);
});

Deno.test("forwardOrRun() runs in process when the agent held the request but ended before running it; never once it ran", async (t) => {
  const cases = [
    { frames: 1, code: 5, loads: 1 },
    { frames: 2, code: 1, loads: 0 },
  ];
  for (const c of cases) {
    await t.step(`${c.frames} progress frame(s), then the end`, async () => {
      let loaded = 0;
      let got = "";
      let out = "";
      await withAgent(async (conn) => {
        const request = await requestOf(conn);
        assert.ok(request.progress === true, "asks for progress");
        for (let i = 0; i < c.frames; i++) await conn.write(PROGRESS);
      }, async (dir) => {
        const code = await forwardOrRun({
          plugin: "azure-vnet",
          env: { CNI_COMMAND: "ADD", AZURE_VNET_STATE_DIR: dir },
          args: [],
          stdin: stdinOf(STDIN),
          stdout: (text) => out += text,
          load: () => {
            loaded++;
            return Promise.resolve((io) => {
              got = new TextDecoder().decode(io.stdin);
              return Promise.resolve(5);
            });
          },
        });
        assert.equal(code, c.code);
      });
      assert.equal(loaded, c.loads);
      if (c.loads === 1) {
        assert.equal(got, STDIN);
        assert.equal(out, "");
      } else assert.equal(JSON.parse(out).code, 11);
    });
  }
  await t.step("progress frames, then the reply", async () => {
    await withAgent(async (conn) => {
      await readFrame(conn, 1 << 20);
      await conn.write(PROGRESS);
      await conn.write(PROGRESS);
      await conn.write(encodeFrame({ code: 0, stdout: "done\n" }));
    }, async (dir) => {
      assert.deepEqual(await forwardAdd(dir), { code: 0, out: "done\n" });
    });
  });
});
