import assert from "node:assert/strict";
import { CniError } from "./errors.ts";
import { runPlugin } from "./skel.ts";
import type { CmdArgs, PluginHandlers, Result } from "./spec.ts";

const INFO = { name: "demo", version: "1.2.3", about: "a demo plugin" };
const RESULT: Result = {
  cniVersion: "1.1.0",
  interfaces: [{ name: "eth0", mac: "4a:9e:0b:12:c4:77", mtu: 1500 }],
  ips: [{ address: "10.0.0.5/24", gateway: "10.0.0.1", interface: 0 }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
};
const ENV = {
  CNI_COMMAND: "ADD",
  CNI_CONTAINERID: "3f1c2a9b",
  CNI_NETNS: "/run/netns/x",
  CNI_IFNAME: "eth0",
  CNI_PATH: "/opt/cni/bin",
};
const CONF = { cniVersion: "1.0.0", name: "azure", type: "demo" };

interface Run {
  code: number;
  stdout: string[];
  stderr: string;
  calls: CmdArgs[];
}

async function run(
  env: Record<string, string>,
  stdin: unknown = CONF,
  options: {
    handlers?: Partial<PluginHandlers>;
    without?: "cmdCheck";
    args?: string[];
  } = {},
): Promise<Run> {
  const stdout: string[] = [];
  let stderr = "";
  const calls: CmdArgs[] = [];
  const handlers: PluginHandlers = {
    cmdAdd: (a) => {
      calls.push(a);
      return Promise.resolve(RESULT);
    },
    cmdDel: (a) => {
      calls.push(a);
      return Promise.resolve();
    },
    cmdCheck: (a) => {
      calls.push(a);
      return Promise.resolve();
    },
    cmdGc: (a) => {
      calls.push(a);
      return Promise.resolve();
    },
    cmdStatus: (a) => {
      calls.push(a);
      return Promise.resolve();
    },
    ...options.handlers,
  };
  if (options.without !== undefined) delete handlers[options.without];
  const code = await runPlugin(handlers, INFO, {
    env,
    stdin: typeof stdin === "string"
      ? new TextEncoder().encode(stdin)
      : new TextEncoder().encode(JSON.stringify(stdin)),
    stdout: (t) => stdout.push(t),
    stderr: (t) => stderr += t,
    args: options.args ?? [],
  });
  // Exactly one JSON document, or nothing.
  assert.ok(stdout.length <= 1, `stdout written ${stdout.length} times`);
  if (stdout[0] !== undefined && !options.args?.includes("--version")) {
    JSON.parse(stdout[0]);
  }
  return { code, stdout, stderr, calls };
}

function doc(r: Run): Record<string, unknown> {
  assert.equal(r.stdout.length, 1);
  return JSON.parse(r.stdout[0] ?? "");
}

Deno.test("runPlugin() ADD prints the result converted to cniVersion", async (t) => {
  for (const v of ["0.2.0", "0.4.0", "1.0.0", "1.1.0"]) {
    await t.step(v, async () => {
      const r = await run(ENV, { ...CONF, cniVersion: v });
      assert.equal(r.code, 0);
      const out = doc(r);
      assert.equal(out.cniVersion, v);
      if (v === "0.2.0") {
        assert.equal((out.ip4 as { ip: string }).ip, "10.0.0.5/24");
      }
      if (v === "0.4.0") {
        assert.equal((out.ips as { version: string }[])[0]?.version, "4");
      }
      if (v === "1.0.0") {
        assert.equal((out.interfaces as { mtu?: number }[])[0]?.mtu, undefined);
      }
      if (v === "1.1.0") {
        assert.equal((out.interfaces as { mtu?: number }[])[0]?.mtu, 1500);
      }
    });
  }
  await t.step("no cniVersion means 0.2.0", async () => {
    const r = await run(ENV, { name: "azure", type: "demo" });
    assert.equal(doc(r).cniVersion, "0.2.0");
  });
});

Deno.test("runPlugin() passes the parsed invocation to the handler", async () => {
  const r = await run({
    ...ENV,
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.9",
    CNI_PATH: "/a::/b",
    OTHER: "x",
  });
  const a = r.calls[0];
  assert.ok(a !== undefined);
  assert.equal(a.command, "ADD");
  assert.equal(a.containerId, "3f1c2a9b");
  assert.equal(a.netns, "/run/netns/x");
  assert.equal(a.ifName, "eth0");
  assert.deepEqual(a.path, ["/a", "/b"]);
  assert.equal(a.args.podName, "web");
  assert.deepEqual(a.args.ips, ["10.0.0.9"]);
  assert.equal(a.config.name, "azure");
  assert.deepEqual(JSON.parse(new TextDecoder().decode(a.stdin)), CONF);
  assert.equal(a.env.OTHER, "x");
});

Deno.test("runPlugin() DEL, CHECK, GC and STATUS print nothing on success", async () => {
  for (
    const [cmd, v] of [["DEL", "0.1.0"], ["CHECK", "0.4.0"], ["GC", "1.1.0"], [
      "STATUS",
      "1.1.0",
    ]]
  ) {
    const env: Record<string, string> = { ...ENV, CNI_COMMAND: cmd ?? "" };
    if (cmd === "GC" || cmd === "STATUS") {
      delete env.CNI_CONTAINERID;
      delete env.CNI_IFNAME;
      delete env.CNI_NETNS;
    }
    if (cmd === "DEL") env.CNI_NETNS = "";
    const r = await run(env, { ...CONF, cniVersion: v });
    assert.equal(r.code, 0, `${cmd}: ${r.stdout.join("")}`);
    assert.deepEqual(r.stdout, []);
    assert.equal(r.calls[0]?.command, cmd);
  }
});

Deno.test("runPlugin() VERSION answers from stdin alone", async (t) => {
  await t.step("podman's placeholders", async () => {
    const r = await run(
      {
        CNI_COMMAND: "VERSION",
        CNI_CONTAINERID: "",
        CNI_NETNS: "dummy",
        CNI_IFNAME: "dummy",
        CNI_PATH: "dummy",
        CNI_ARGS: "",
      },
      { cniVersion: "1.0.0" },
    );
    assert.equal(r.code, 0);
    assert.deepEqual(doc(r), {
      cniVersion: "1.0.0",
      supportedVersions: [
        "0.1.0",
        "0.2.0",
        "0.3.0",
        "0.3.1",
        "0.4.0",
        "1.0.0",
        "1.1.0",
      ],
    });
    assert.deepEqual(r.calls, []);
  });
  await t.step("empty stdin echoes 0.2.0", async () => {
    const r = await run({ CNI_COMMAND: "VERSION" }, "");
    assert.equal(doc(r).cniVersion, "0.2.0");
  });
  await t.step("bad JSON is code 6", async () => {
    const r = await run({ CNI_COMMAND: "VERSION" }, "{");
    assert.equal(r.code, 1);
    assert.equal(doc(r).code, 6);
  });
});

Deno.test("runPlugin() maps every failure to one error document", async (t) => {
  const env = (over: Record<string, string | undefined>) => {
    const e: Record<string, string> = { ...ENV };
    for (const [k, v] of Object.entries(over)) {
      if (v === undefined) delete e[k];
      else e[k] = v;
    }
    return e;
  };
  const cases: [string, Record<string, string>, unknown, number, RegExp][] = [
    [
      "unknown command",
      env({ CNI_COMMAND: "FOO" }),
      CONF,
      4,
      /Unknown CNI_COMMAND "FOO"/,
    ],
    [
      "missing container id",
      env({ CNI_CONTAINERID: undefined }),
      CONF,
      3,
      /CNI_CONTAINERID/,
    ],
    [
      "bad container id",
      env({ CNI_CONTAINERID: "-x" }),
      CONF,
      4,
      /Invalid CNI_CONTAINERID "-x"/,
    ],
    [
      "missing netns and path",
      env({ CNI_NETNS: undefined, CNI_PATH: "" }),
      CONF,
      4,
      /variables CNI_NETNS, CNI_PATH for ADD/,
    ],
    [
      "missing ifname",
      env({ CNI_IFNAME: undefined }),
      CONF,
      4,
      /CNI_IFNAME for ADD/,
    ],
    [
      "long ifname",
      env({ CNI_IFNAME: "a234567890123456" }),
      CONF,
      4,
      /longer than 15 bytes/,
    ],
    ["ifname ..", env({ CNI_IFNAME: ".." }), CONF, 4, /must not be \. or \.\./],
    [
      "ifname with :",
      env({ CNI_IFNAME: "eth:0" }),
      CONF,
      4,
      /must not contain/,
    ],
    [
      "ifname with space",
      env({ CNI_IFNAME: "eth 0" }),
      CONF,
      4,
      /must not contain/,
    ],
    [
      "ifname with % (a kernel name template)",
      env({ CNI_IFNAME: "eth%d" }),
      CONF,
      4,
      /Invalid CNI_IFNAME "eth%d": must not contain %/,
    ],
    [
      "ifname with a control character",
      env({ CNI_IFNAME: "eth\x010" }),
      CONF,
      4,
      /Invalid CNI_IFNAME "eth\\u00010": must not contain control/,
    ],
    [
      "relative netns",
      env({ CNI_NETNS: "run/netns/x" }),
      CONF,
      4,
      /Invalid CNI_NETNS "run\/netns\/x": must be an absolute path/,
    ],
    [
      "netns with a newline",
      env({ CNI_NETNS: "/run/netns/x\nINFO forged line" }),
      CONF,
      4,
      /Invalid CNI_NETNS "\/run\/netns\/x\\nINFO forged line": must not contain control/,
    ],
    [
      "netns with DEL (0x7f)",
      env({ CNI_COMMAND: "DEL", CNI_NETNS: "/run/netns/x\x7f" }),
      CONF,
      4,
      /Invalid CNI_NETNS "\/run\/netns\/x\x7f": must not contain control/,
    ],
    [
      "GC without CNI_PATH",
      { CNI_COMMAND: "GC" },
      { ...CONF, cniVersion: "1.1.0" },
      4,
      /CNI_PATH for GC/,
    ],
    ["bad JSON", env({}), "{", 6, /invalid JSON/],
    ["missing name", env({}), { type: "demo" }, 7, /field "name" is missing/],
    [
      "bad version",
      env({}),
      { ...CONF, cniVersion: "9.9.9" },
      1,
      /Incompatible CNI version "9.9.9"/,
    ],
    [
      "CHECK at 0.3.1",
      env({ CNI_COMMAND: "CHECK" }),
      { ...CONF, cniVersion: "0.3.1" },
      4,
      /needs 0.4.0/,
    ],
    ["STATUS at 1.0.0", env({ CNI_COMMAND: "STATUS" }), CONF, 4, /needs 1.1.0/],
    ["malformed CNI_ARGS", env({ CNI_ARGS: "FOO" }), CONF, 4, /not KEY=VALUE/],
    [
      "unknown CNI_ARGS key",
      env({ CNI_ARGS: "FOO=1" }),
      CONF,
      2,
      /Unsupported CNI_ARGS key "FOO"/,
    ],
  ];
  for (const [name, e, stdin, code, msg] of cases) {
    await t.step(name, async () => {
      const r = await run(e, stdin);
      assert.equal(r.code, 1);
      const out = doc(r);
      assert.equal(out.code, code, JSON.stringify(out));
      assert.match(String(out.msg), msg);
      assert.equal(typeof out.cniVersion, "string");
      assert.deepEqual(r.calls, []);
    });
  }
  await t.step(
    "version 9.9.9 lists the supported versions in details",
    async () => {
      const out = doc(await run(env({}), { ...CONF, cniVersion: "9.9.9" }));
      assert.match(String(out.details), /plugin supports 0\.1\.0, .*1\.1\.0/);
    },
  );
  await t.step("DEL with an empty CNI_NETNS still runs", async () => {
    for (const netns of ["", undefined]) {
      const r = await run(env({ CNI_COMMAND: "DEL", CNI_NETNS: netns }));
      assert.equal(r.code, 0, r.stdout.join(""));
      assert.equal(r.calls.length, 1);
      assert.equal(r.calls[0]?.netns, "");
    }
  });
  await t.step("DEL tolerates unknown CNI_ARGS keys", async () => {
    const r = await run(env({ CNI_COMMAND: "DEL", CNI_ARGS: "FOO=1" }));
    assert.equal(r.code, 0);
  });
  await t.step("error object carries the config's version", async () => {
    const out = doc(
      await run(env({ CNI_CONTAINERID: "" }), { ...CONF, cniVersion: "0.3.1" }),
    );
    assert.equal(out.cniVersion, "0.3.1");
  });
});

Deno.test("runPlugin() passes a CniError through and wraps others as 999", async (t) => {
  await t.step("CniError", async () => {
    const r = await run(ENV, CONF, {
      handlers: {
        cmdAdd: () =>
          Promise.reject(
            new CniError(100, "No available addresses", { details: "pool x" }),
          ),
      },
    });
    assert.equal(r.code, 1);
    assert.deepEqual(doc(r), {
      cniVersion: "1.0.0",
      code: 100,
      msg: "No available addresses",
      details: "pool x",
    });
  });
  await t.step("other exception", async () => {
    const r = await run(ENV, CONF, {
      handlers: {
        cmdAdd: () =>
          Promise.reject(
            new Error("Cannot add veth", { cause: new Error("exists") }),
          ),
      },
    });
    const out = doc(r);
    assert.equal(out.code, 999);
    assert.equal(out.msg, "Cannot add veth");
    assert.equal(out.details, "Cannot add veth: exists");
    assert.ok(!r.stdout[0]?.includes("    at "), "no stack trace");
  });
  await t.step("thrown non-error", async () => {
    const r = await run(ENV, CONF, {
      handlers: { cmdAdd: () => Promise.reject("boom") },
    });
    assert.deepEqual(doc(r), {
      cniVersion: "1.0.0",
      code: 999,
      msg: "Internal error",
      details: "boom",
    });
  });
  await t.step("missing handler is code 4", async () => {
    const r = await run({ ...ENV, CNI_COMMAND: "CHECK" }, {
      ...CONF,
      cniVersion: "0.4.0",
    }, {
      without: "cmdCheck",
    });
    assert.equal(doc(r).code, 4);
    assert.match(String(doc(r).msg), /CHECK is not supported/);
  });
  await t.step("ADD result that cannot be converted is an error", async () => {
    const r = await run(ENV, { ...CONF, cniVersion: "0.2.0" }, {
      handlers: { cmdAdd: () => Promise.resolve({ cniVersion: "1.1.0" }) },
    });
    assert.equal(r.code, 1);
    assert.match(String(doc(r).msg), /no valid IP addresses/);
  });
});

Deno.test("runPlugin() prints no URL credentials or query values", async (t) => {
  const url = "http://user:pw@h/p?sig=xyz";
  const handlers: [string, () => Promise<Result>][] = [
    [
      "CniError msg and details",
      () =>
        Promise.reject(
          new CniError(11, `Cannot get "${url}": HTTP 503`, {
            details: `fetch ${url} failed`,
          }),
        ),
    ],
    [
      "CniError with a cause",
      () =>
        Promise.reject(
          new CniError(101, `Cannot get the host's addresses from "${url}"`, {
            cause: new Error(`GET ${url}: 403`),
          }),
        ),
    ],
    [
      "other exception (999)",
      () =>
        Promise.reject(
          new Error(`Cannot get "${url}"`, { cause: new Error(url) }),
        ),
    ],
  ];
  for (const [name, cmdAdd] of handlers) {
    await t.step(name, async () => {
      const r = await run(ENV, CONF, { handlers: { cmdAdd } });
      assert.equal(r.code, 1);
      const text = r.stdout[0] ?? "";
      assert.ok(!text.includes("pw"), text);
      assert.ok(!text.includes("xyz"), text);
      const out = doc(r);
      assert.match(String(out.msg), /http:\/\/REDACTED@h\/p\?sig=REDACTED/);
      assert.match(String(out.details), /http:\/\/REDACTED@h\/p\?sig=REDACTED/);
    });
  }
  await t.step("an error without a URL is printed as is", async () => {
    const r = await run(ENV, CONF, {
      handlers: {
        cmdAdd: () =>
          Promise.reject(
            new CniError(100, "No free address", { details: "x" }),
          ),
      },
    });
    assert.deepEqual(doc(r), {
      cniVersion: "1.0.0",
      code: 100,
      msg: "No free address",
      details: "x",
    });
  });
});

Deno.test("runPlugin() serves humans: --version, --help and no CNI_COMMAND", async () => {
  let r = await run({}, CONF, { args: ["--version"] });
  assert.equal(r.code, 0);
  assert.deepEqual(r.stdout, ["demo 1.2.3\n"]);
  r = await run({}, CONF, { args: ["--help"] });
  assert.equal(r.code, 0);
  assert.deepEqual(r.stdout, []);
  assert.match(
    r.stderr,
    /demo 1\.2\.3: a demo plugin[\s\S]*CNI protocol versions supported: 0\.1\.0/,
  );
  r = await run({}, CONF);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Usage:/);
  assert.equal(doc(r).code, 4);
  assert.match(String(doc(r).msg), /Missing environment variable CNI_COMMAND/);
});

Deno.test("runPlugin() reads stdin from a stream", async () => {
  const stdout: string[] = [];
  const code = await runPlugin(
    {
      cmdAdd: () => Promise.resolve(RESULT),
      cmdDel: () => Promise.resolve(),
    },
    INFO,
    {
      env: ENV,
      stdin: ReadableStream.from([
        new TextEncoder().encode(JSON.stringify(CONF)),
      ]),
      stdout: (t) => stdout.push(t),
      args: [],
    },
  );
  assert.equal(code, 0);
  assert.equal(JSON.parse(stdout[0] ?? "").cniVersion, "1.0.0");
});

Deno.test("runPlugin() reads stdin from a read()-able file in chunks", async (t) => {
  const bytes = new TextEncoder().encode(JSON.stringify(CONF));
  for (const size of [1, 7, bytes.length]) {
    await t.step(`${size}-byte reads`, async () => {
      let off = 0;
      const reader = {
        read(p: Uint8Array): Promise<number | null> {
          if (off >= bytes.length) return Promise.resolve(null);
          const n = Math.min(size, p.length, bytes.length - off);
          p.set(bytes.subarray(off, off + n));
          off += n;
          return Promise.resolve(n);
        },
      };
      const stdout: string[] = [];
      const code = await runPlugin(
        {
          cmdAdd: () => Promise.resolve(RESULT),
          cmdDel: () => Promise.resolve(),
        },
        INFO,
        { env: ENV, stdin: reader, stdout: (s) => stdout.push(s), args: [] },
      );
      assert.equal(code, 0);
      assert.equal(JSON.parse(stdout[0] ?? "").cniVersion, "1.0.0");
    });
  }
  await t.step("a read error is code 5", async () => {
    const stdout: string[] = [];
    const code = await runPlugin(
      {
        cmdAdd: () => Promise.resolve(RESULT),
        cmdDel: () => Promise.resolve(),
      },
      INFO,
      {
        env: ENV,
        stdin: { read: () => Promise.reject(new Deno.errors.BrokenPipe("x")) },
        stdout: (s) => stdout.push(s),
        args: [],
      },
    );
    assert.equal(code, 1);
    const d = JSON.parse(stdout[0] ?? "");
    assert.equal(d.code, 5);
    assert.match(d.msg, /Cannot read stdin/);
  });
});
