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

function plugin(
  handlers: Partial<PluginHandlers> = {},
): ServedPlugin & { handlers: PluginHandlers } {
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

/** Reads one reply frame. */
async function replyOf(conn: Deno.Conn) {
  const body = await readFrame(conn, 1 << 20);
  assert.ok(body !== undefined, "a reply");
  return decodeReply(body);
}

/** A raw client: sends one request frame, returns the open connection. */
async function send(
  dir: string,
  env: Record<string, string>,
): Promise<Deno.Conn> {
  const conn = await Deno.connect({
    transport: "unix",
    path: `${dir}/azure-vnet-agent.sock`,
  });
  const frame = encodeFrame({
    plugin: "azure-vnet",
    env: { CNI_IFNAME: "eth0", CNI_PATH: "/opt/cni/bin", ...env },
    stdin: new TextEncoder().encode(CONF).toBase64(),
  });
  let off = 0;
  while (off < frame.length) off += await conn.write(frame.subarray(off));
  return conn;
}

/** A plugin whose DELs wait for `release()`; `started()` counts them. */
function gatedDel(): {
  vnet: ServedPlugin;
  release: () => void;
  started: () => number;
} {
  let open = () => {};
  const gate = new Promise<void>((r) => open = r);
  let started = 0;
  const vnet = plugin({
    cmdDel: async () => {
      started++;
      await gate;
    },
  });
  return { vnet, release: () => open(), started: () => started };
}

/** Polls until `ok()` or fails after `ms`. */
async function until(ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * One call through the forwarder (progress frames and all) to the agent in
 * `dir`: `load` is its in-process fallback, which must not run by default.
 */
function forward(
  dir: string,
  env: Record<string, string>,
  options: {
    load?: () => Promise<(io: { stdin?: Uint8Array }) => Promise<number>>;
    stdout?: (text: string) => void;
  } = {},
): Promise<number> {
  return forwardOrRun({
    plugin: "azure-vnet",
    env: {
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin",
      AZURE_VNET_STATE_DIR: dir,
      ...env,
    },
    args: [],
    stdin: stdinOf(CONF),
    stdout: options.stdout ?? (() => {}),
    load: options.load ??
      (() => Promise.reject(new Error("must not fall back"))),
  });
}

Deno.test("AgentServer answers VERSION (the probes' call) while every slot is busy", async () => {
  const { vnet, release, started } = gatedDel();
  await withServer({ vnet }, async (_server, dir) => {
    const busy = await Promise.all(
      ["b0", "b1", "b2"].map((id) =>
        send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: id })
      ),
    );
    await until(() => started() === 2);
    const version = await send(dir, { CNI_COMMAND: "VERSION" });
    const reply = await replyOf(version);
    assert.equal(reply.code, 0);
    assert.match(reply.stdout, /supportedVersions/);
    version.close();
    release();
    for (const c of busy) {
      assert.equal((await replyOf(c)).code, 0);
      c.close();
    }
  }, { maxConcurrent: 2 });
});

Deno.test("AgentServer drops a queued request whose caller hung up, and never runs it", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  const ran: string[] = [];
  const vnet = plugin({
    cmdDel: async (args) => {
      ran.push(args.containerId);
      if (args.containerId === "first") await gate;
    },
  });
  await withServer({ vnet }, async (server, dir) => {
    const first = await send(dir, {
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "first",
    });
    await until(() => ran.length === 1);
    // Queued behind the one slot, then given up on (the runtime's kill).
    const gone = await send(dir, {
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "gone",
    });
    await until(() => server.inFlight === 2);
    gone.close();
    await new Promise((r) => setTimeout(r, 50));
    const later = await send(dir, {
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "later",
    });
    release();
    for (const c of [first, later]) {
      assert.equal((await replyOf(c)).code, 0);
      c.close();
    }
    await until(() => server.inFlight === 0);
    assert.deepEqual(ran, ["first", "later"]);
    assert.equal(server.served, 2);
  }, { maxConcurrent: 1 });
});

Deno.test("AgentServer runs the requests of one attachment one after another, in order; other attachments pass", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  const events: string[] = [];
  const vnet = plugin({
    cmdAdd: async (args) => {
      events.push(`ADD ${args.containerId} start`);
      if (args.containerId === "pod") await gate;
      events.push(`ADD ${args.containerId} end`);
      return { cniVersion: "1.0.0", ips: [{ address: "10.0.0.5/24" }] };
    },
    cmdDel: (args) => {
      events.push(`DEL ${args.containerId}`);
      return Promise.resolve();
    },
  });
  await withServer({ vnet }, async (_server, dir) => {
    const add = await send(dir, {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "pod",
      CNI_NETNS: "/var/run/netns/x",
    });
    await until(() => events.length === 1);
    // The runtime gave up on the ADD and cleans up: the DEL waits for it.
    const del = await send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "pod" });
    const other = await send(dir, {
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "other",
    });
    assert.equal((await replyOf(other)).code, 0);
    other.close();
    assert.deepEqual(events, ["ADD pod start", "DEL other"]);
    release();
    for (const c of [add, del]) {
      assert.equal((await replyOf(c)).code, 0);
      c.close();
    }
    assert.deepEqual(events, [
      "ADD pod start",
      "DEL other",
      "ADD pod end",
      "DEL pod",
    ]);
  });
});

Deno.test("AgentServer hands a request back unrun when told to; the forwarder runs it in its own process", async () => {
  let ran = 0;
  const vnet = plugin({
    cmdAdd: () => {
      ran++;
      return Promise.reject(new Error("must not run in the agent"));
    },
  });
  const dir = await Deno.makeTempDir();
  const seen: string[] = [];
  const server = await AgentServer.listen({
    socketPath: `${dir}/azure-vnet-agent.sock`,
    stateDir: dir,
    plugins: { "azure-vnet": vnet, "azure-vnet-ipam": vnet },
    handBack: (request, stdin) => {
      seen.push(new TextDecoder().decode(stdin));
      return request.env.CNI_COMMAND === "ADD" ? "a delegate" : undefined;
    },
  });
  try {
    let got: Uint8Array | undefined;
    let out = "";
    const code = await forwardOrRun({
      plugin: "azure-vnet",
      env: {
        CNI_COMMAND: "ADD",
        CNI_CONTAINERID: "c",
        CNI_IFNAME: "eth0",
        CNI_NETNS: "/n",
        CNI_PATH: "/opt/cni/bin",
        AZURE_VNET_STATE_DIR: dir,
      },
      args: [],
      stdin: stdinOf(CONF),
      stdout: (t) => out += t,
      load: () =>
        Promise.resolve((io) => {
          got = io.stdin;
          return Promise.resolve(42);
        }),
    });
    assert.equal(code, 42);
    assert.equal(out, "");
    assert.equal(new TextDecoder().decode(got), CONF);
    assert.deepEqual(seen, [CONF]);
    assert.equal(ran, 0);
    // A forwarder that predates the hand-back (no progress frames asked
    // for) would print the hand-back as an error: the agent serves it.
    const conn = await send(dir, {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c",
      CNI_NETNS: "/n",
    });
    const raw = await replyOf(conn);
    conn.close();
    assert.ok(raw.inProcess === undefined, "not handed back");
    assert.equal(ran, 1, "served by the agent");
    assert.equal(raw.code, 1);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AgentServer drops a connection that stalls mid-request after the read timeout, holding no slot", async () => {
  const vnet = plugin();
  const dir = await Deno.makeTempDir();
  const server = await AgentServer.listen({
    socketPath: `${dir}/azure-vnet-agent.sock`,
    stateDir: dir,
    plugins: { "azure-vnet": vnet, "azure-vnet-ipam": vnet },
    maxConcurrent: 1,
    readTimeoutMs: 100,
  });
  try {
    const stalled = await Deno.connect({
      transport: "unix",
      path: `${dir}/azure-vnet-agent.sock`,
    });
    await stalled.write(new Uint8Array([0, 0, 1, 0, 123]));
    const ok = await send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "c" });
    assert.equal((await replyOf(ok)).code, 0);
    ok.close();
    // The stalled one is closed by the agent.
    assert.equal(await stalled.read(new Uint8Array(8)), null);
    stalled.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AgentServer sends the progress frames a forwarder asks for: one when it holds the request, one when it runs it", async () => {
  const { vnet, release, started } = gatedDel();
  await withServer({ vnet }, async (_server, dir) => {
    const path = `${dir}/azure-vnet-agent.sock`;
    const open = async (id: string) => {
      const conn = await Deno.connect({ transport: "unix", path });
      await conn.write(encodeFrame({
        plugin: "azure-vnet",
        env: {
          CNI_COMMAND: "DEL",
          CNI_CONTAINERID: id,
          CNI_IFNAME: "eth0",
          CNI_PATH: "/opt/cni/bin",
        },
        stdin: new TextEncoder().encode(CONF).toBase64(),
        progress: true,
      }));
      return conn;
    };
    const running = await open("a");
    await until(() => started() === 1);
    const waiting = await open("b");
    // Held, not run: one frame only (the one slot is busy).
    assert.equal((await readFrame(waiting, 1 << 20))?.length, 0);
    assert.equal((await readFrame(running, 1 << 20))?.length, 0);
    assert.equal((await readFrame(running, 1 << 20))?.length, 0);
    release();
    assert.equal((await replyOf(running)).code, 0);
    assert.equal((await readFrame(waiting, 1 << 20))?.length, 0);
    assert.equal((await replyOf(waiting)).code, 0);
    running.close();
    waiting.close();
  }, { maxConcurrent: 1 });
});

Deno.test("AgentServer frees a request's slot while its handler waits idle, and takes one again after", async () => {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  const events: string[] = [];
  const base = plugin({
    cmdDel: (args) => {
      events.push(`DEL ${args.containerId}`);
      return Promise.resolve();
    },
  });
  const vnet: ServedPlugin = {
    info: base.info,
    handlers: (request) => ({
      ...base.handlers,
      cmdAdd: async (args) => {
        events.push(`ADD ${args.containerId} waits`);
        await request.idle(gate);
        events.push(`ADD ${args.containerId} done`);
        return { cniVersion: "1.0.0", ips: [{ address: "10.0.0.5/24" }] };
      },
    }),
  };
  await withServer({ vnet }, async (_server, dir) => {
    const add = await send(dir, {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "waiting",
      CNI_NETNS: "/var/run/netns/x",
    });
    await until(() => events.length === 1);
    // The one slot is free while the ADD waits: a DEL of another pod runs.
    const del = await send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "d" });
    assert.equal((await replyOf(del)).code, 0);
    del.close();
    release();
    assert.equal((await replyOf(add)).code, 0);
    add.close();
    assert.deepEqual(events, [
      "ADD waiting waits",
      "DEL d",
      "ADD waiting done",
    ]);
  }, { maxConcurrent: 1 });
});

Deno.test("AgentServer gives a call code 11 when an earlier call of its attachment runs past the wait; the line moves on", async () => {
  const { vnet, release, started } = gatedDel();
  const dir = await Deno.makeTempDir();
  const server = await AgentServer.listen({
    socketPath: `${dir}/azure-vnet-agent.sock`,
    stateDir: dir,
    plugins: { "azure-vnet": vnet, "azure-vnet-ipam": vnet },
    attachmentWaitMs: 100,
  });
  try {
    const stuck = await send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "p" });
    await until(() => started() === 1);
    const late = await send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "p" });
    const reply = await replyOf(late);
    late.close();
    assert.equal(reply.code, 1);
    assert.equal(JSON.parse(reply.stdout).code, 11);
    assert.match(JSON.parse(reply.stdout).msg, /earlier call .* still runs/);
    assert.equal(started(), 1, "the late one never ran");
    release();
    assert.equal((await replyOf(stuck)).code, 0);
    stuck.close();
    const next = await send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "p" });
    assert.equal((await replyOf(next)).code, 0);
    next.close();
    assert.equal(started(), 2);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AgentServer refuses a required hand-back to a forwarder that cannot take it (code 11) and never runs it; a newer one runs it itself", async () => {
  let ran = 0;
  const vnet = plugin({
    cmdDel: () => {
      ran++;
      return Promise.resolve();
    },
  });
  const dir = await Deno.makeTempDir();
  const server = await AgentServer.listen({
    socketPath: `${dir}/azure-vnet-agent.sock`,
    stateDir: dir,
    plugins: { "azure-vnet": vnet, "azure-vnet-ipam": vnet },
    handBack: () => ({ reason: "must not run here", required: true }),
  });
  try {
    // Older than hand-backs: no progress frames asked for.
    const conn = await send(dir, { CNI_COMMAND: "DEL", CNI_CONTAINERID: "c" });
    const raw = await replyOf(conn);
    conn.close();
    assert.equal(raw.code, 1);
    const doc = JSON.parse(raw.stdout);
    assert.equal(doc.code, 11);
    assert.equal(doc.details, "must not run here");
    let inProcess = 0;
    const code = await forward(dir, {
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "c",
    }, {
      load: () =>
        Promise.resolve(() => {
          inProcess++;
          return Promise.resolve(0);
        }),
    });
    assert.equal(code, 0);
    assert.equal(inProcess, 1);
    assert.equal(ran, 0, "the agent ran neither");
    assert.equal(server.served, 0);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AgentServer answers a plugin's VERSION whatever its readiness; only the readiness probe's gets code 11", async () => {
  const dir = await Deno.makeTempDir();
  const vnet = plugin();
  const server = await AgentServer.listen({
    socketPath: `${dir}/azure-vnet-agent.sock`,
    stateDir: dir,
    plugins: { "azure-vnet": vnet, "azure-vnet-ipam": vnet },
    readiness: () => "ebtables: legacy vs nft",
  });
  try {
    let out = "";
    assert.equal(
      await forward(dir, { CNI_COMMAND: "VERSION" }, {
        stdout: (t) => out += t,
      }),
      0,
    );
    assert.match(out, /supportedVersions/);
    const probe = await send(dir, {
      CNI_COMMAND: "VERSION",
      AZURE_VNET_AGENT_PROBE_READY: "1",
    });
    const reply = await replyOf(probe);
    probe.close();
    assert.equal(reply.code, 1);
    assert.deepEqual(JSON.parse(reply.stdout), {
      cniVersion: "1.0.0",
      code: 11,
      msg: "The azure-vnet agent is not ready",
      details: "ebtables: legacy vs nft",
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** `p`, or a rejection after `ms` (a test that fails rather than hangs). */
function within<T>(p: Promise<T>, ms = 3000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

Deno.test("AgentServer.close() drops the requests that have not started: a forwarder runs its own in process, an older one gets code 11; the running one finishes", async () => {
  const { vnet, release, started } = gatedDel();
  await withServer({ vnet }, async (server, dir) => {
    const fallbacks: string[] = [];
    const load = (id: string) => () =>
      Promise.resolve((io: { stdin?: Uint8Array }) => {
        fallbacks.push(`${id}: ${new TextDecoder().decode(io.stdin)}`);
        return Promise.resolve(42);
      });
    try {
      const running = forward(dir, {
        CNI_COMMAND: "DEL",
        CNI_CONTAINERID: "run",
      });
      await until(() => started() === 1);
      // Waiting for the one slot; waiting behind its attachment's running
      // call; an older forwarder's (no progress frames), waiting too.
      const queued = forward(dir, {
        CNI_COMMAND: "DEL",
        CNI_CONTAINERID: "queued",
      }, { load: load("queued") });
      const again = forward(dir, {
        CNI_COMMAND: "DEL",
        CNI_CONTAINERID: "run",
      }, { load: load("again") });
      const old = await send(dir, {
        CNI_COMMAND: "DEL",
        CNI_CONTAINERID: "old",
      });
      await until(() => server.inFlight === 4);
      await new Promise((r) => setTimeout(r, 50));
      let closed = false;
      const closing = server.close().then(() => closed = true);
      assert.equal(await within(queued), 42);
      assert.equal(await within(again), 42);
      const reply = await within(replyOf(old));
      old.close();
      assert.equal(reply.code, 1);
      const doc = JSON.parse(reply.stdout);
      assert.equal(doc.code, 11);
      assert.match(doc.msg, /agent is stopping and did not run this call/);
      assert.deepEqual(fallbacks.sort(), [`again: ${CONF}`, `queued: ${CONF}`]);
      assert.ok(!closed, "the running call holds close() up");
      assert.equal(started(), 1);
      release();
      assert.equal(await running, 0);
      await closing;
      assert.equal(started(), 1, "nothing that waited ran in the agent");
      assert.equal(server.served, 1);
    } finally {
      release();
    }
  }, { maxConcurrent: 1 });
});
