import assert from "node:assert/strict";
import { stdinOf } from "../forward/_test_io.ts";
import { type PluginHandlers, runPlugin } from "@vnet/cni";
import {
  decodeReply,
  encodeFrame,
  forwardOrRun,
  MAX_REQUEST_BYTES,
  readFrame,
} from "@vnet/forward";
import { AgentServer, type ServedPlugin } from "./server.ts";

const CONF = '{"cniVersion":"1.0.0","name":"n","type":"azure-vnet"}';

function plugin(handlers: Partial<PluginHandlers> = {}): ServedPlugin {
  return {
    handlers: {
      cmdAdd: () =>
        Promise.resolve({
          cniVersion: "1.0.0",
          ips: [{ address: "10.0.0.5/24" }],
        }),
      cmdDel: () => Promise.resolve(),
      ...handlers,
    },
    info: { name: "demo", version: "0.1.0" },
  };
}

async function withServer(
  plugins: { vnet: ServedPlugin; ipam?: ServedPlugin },
  body: (server: AgentServer, dir: string) => Promise<void>,
  options: { maxConcurrent?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const server = await AgentServer.listen({
    socketPath: `${dir}/azure-vnet-agent.sock`,
    stateDir: dir,
    plugins: {
      "azure-vnet": plugins.vnet,
      "azure-vnet-ipam": plugins.ipam ?? plugins.vnet,
    },
    ...options,
  });
  try {
    await body(server, dir);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("AgentServer replies byte for byte what runPlugin() prints in process", async () => {
  const vnet = plugin({
    cmdDel: () => Promise.reject(new Error("boom")),
  });
  await withServer({ vnet }, async (server, dir) => {
    for (const command of ["ADD", "DEL", "VERSION", "CHECK"]) {
      const env = {
        CNI_COMMAND: command,
        CNI_CONTAINERID: "c1",
        CNI_NETNS: "/var/run/netns/x",
        CNI_IFNAME: "eth0",
        CNI_PATH: "/opt/cni/bin",
        AZURE_VNET_STATE_DIR: dir,
      };
      let viaAgent = "";
      const agentCode = await forwardOrRun({
        plugin: "azure-vnet",
        env,
        args: [],
        stdin: stdinOf(CONF),
        stdout: (t) => viaAgent += t,
        load: () => Promise.reject(new Error("must not fall back")),
      });
      let inProcess = "";
      const code = await runPlugin(vnet.handlers, vnet.info, {
        env,
        stdin: new TextEncoder().encode(CONF),
        stdout: (t) => inProcess += t,
        stderr: () => {},
        args: [],
      });
      assert.equal(agentCode, code, command);
      assert.equal(viaAgent, inProcess, command);
    }
    assert.equal(server.served, 4);
  });
});

Deno.test("AgentServer refuses a request past the size limit with a CNI error (5)", async () => {
  await withServer({ vnet: plugin() }, async (server, dir) => {
    const conn = await Deno.connect({
      transport: "unix",
      path: `${dir}/azure-vnet-agent.sock`,
    });
    const big = encodeFrame({
      plugin: "azure-vnet",
      env: { CNI_COMMAND: "ADD", PAD: "x".repeat(MAX_REQUEST_BYTES) },
      stdin: "",
    });
    let off = 0;
    while (off < big.length) off += await conn.write(big.subarray(off));
    const body = await readFrame(conn, 1 << 20);
    conn.close();
    assert.ok(body !== undefined);
    const reply = decodeReply(body);
    assert.equal(reply.code, 1);
    const doc = JSON.parse(reply.stdout);
    assert.equal(doc.code, 5);
    assert.match(doc.msg, /Request too large/);
    assert.match(doc.details, /larger than the limit of 1048576/);
    await server.close();
    assert.equal(server.served, 1);
  });
});

Deno.test("AgentServer.listen() makes the socket 0600 and replaces a stale one, not a live one", async () => {
  await withServer({ vnet: plugin() }, async (_server, dir) => {
    const path = `${dir}/azure-vnet-agent.sock`;
    assert.equal(((await Deno.stat(path)).mode ?? 0) & 0o777, 0o600);
    await assert.rejects(
      AgentServer.listen({
        socketPath: path,
        stateDir: dir,
        plugins: { "azure-vnet": plugin(), "azure-vnet-ipam": plugin() },
      }),
      { name: "Error", message: /another agent listens/ },
    );
  });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/azure-vnet-agent.sock`;
  // A socket file nobody listens on: bound by a helper process that exits.
  await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.listen({transport:"unix",path:${
        JSON.stringify(path)
      }}); Deno.exit(0)`,
    ],
  }).output();
  assert.ok((await Deno.lstat(path)).isSocket);
  const server = await AgentServer.listen({
    socketPath: path,
    stateDir: dir,
    plugins: { "azure-vnet": plugin(), "azure-vnet-ipam": plugin() },
  });
  await server.close();
  await assert.rejects(Deno.lstat(path), { name: "NotFound" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("AgentServer.close() stops accepting and answers the request in flight", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  let entered = () => {};
  const inside = new Promise<void>((r) => entered = r);
  const vnet = plugin({
    cmdDel: async () => {
      entered();
      await gate;
    },
  });
  await withServer({ vnet }, async (server, dir) => {
    let out = "";
    const pending = forwardOrRun({
      plugin: "azure-vnet",
      env: {
        CNI_COMMAND: "DEL",
        CNI_CONTAINERID: "c1",
        CNI_IFNAME: "eth0",
        CNI_PATH: "/opt/cni/bin",
        AZURE_VNET_STATE_DIR: dir,
      },
      args: [],
      stdin: stdinOf(CONF),
      stdout: (t) => out += t,
      load: () => Promise.reject(new Error("must not fall back")),
    });
    await inside;
    const closed = server.close();
    await assert.rejects(
      Deno.connect({ transport: "unix", path: `${dir}/azure-vnet-agent.sock` }),
    );
    assert.equal(server.inFlight, 1);
    release();
    await closed;
    assert.equal(await pending, 0);
    assert.equal(out, "");
    assert.equal(server.served, 1);
  });
});

Deno.test("AgentServer runs at most maxConcurrent requests at once; the others wait their turn", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  let active = 0;
  let most = 0;
  let started = 0;
  const vnet = plugin({
    cmdDel: async () => {
      started++;
      most = Math.max(most, ++active);
      await gate;
      active--;
    },
  });
  await withServer({ vnet }, async (server, dir) => {
    const calls = Array.from({ length: 5 }, (_, i) =>
      forwardOrRun({
        plugin: "azure-vnet",
        env: {
          CNI_COMMAND: "DEL",
          CNI_CONTAINERID: `c${i}`,
          CNI_IFNAME: "eth0",
          CNI_PATH: "/opt/cni/bin",
          AZURE_VNET_STATE_DIR: dir,
        },
        args: [],
        stdin: stdinOf(CONF),
        stdout: () => {},
        load: () => Promise.reject(new Error("must not fall back")),
      }));
    while (server.inFlight < 5 || started < 2) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(started, 2);
    release();
    assert.deepEqual(await Promise.all(calls), [0, 0, 0, 0, 0]);
    assert.equal(started, 5);
    assert.equal(most, 2);
    await server.close();
    assert.equal(server.served, 5);
  }, { maxConcurrent: 2 });
});
