import assert from "node:assert/strict";
import {
  delegateAdd,
  delegateCommand,
  execPlugin,
  findPlugin,
} from "./invoke.ts";
import type { PluginExec } from "./invoke.ts";

const STDIN = new TextEncoder().encode(
  '{"cniVersion":"0.3.1","name":"n","type":"x"}',
);

async function pluginDir(script: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "cnitest-invoke-" });
  await Deno.writeTextFile(`${dir}/fake`, `#!/bin/sh\n${script}\n`, {
    mode: 0o755,
  });
  await Deno.writeTextFile(`${dir}/noexec`, "", { mode: 0o644 });
  return dir;
}

function fakeExec(
  code: number,
  stdout: string,
  seen: unknown[] = [],
): PluginExec {
  return (binary, options) => {
    seen.push({
      binary,
      env: options.env,
      stdin: new TextDecoder().decode(options.stdin),
    });
    return Promise.resolve({ code, stdout: new TextEncoder().encode(stdout) });
  };
}

Deno.test("execPlugin() runs the binary with the same env and the full config", async () => {
  const dir = await pluginDir(
    'echo "$CNI_COMMAND" >&2; cat > "$OUT_FILE"; env | grep -c ^HOME= > "$OUT_FILE.home"; printf \'{"cniVersion":"0.3.1","ips":[{"version":"4","address":"10.1.0.2/24"}]}\'',
  );
  const errs: string[] = [];
  const result = await delegateAdd("fake", {
    env: {
      CNI_PATH: `/nonexistent:${dir}`,
      OUT_FILE: `${dir}/stdin`,
      CNI_COMMAND: "DEL",
    },
    stdin: STDIN,
    stderr: (c) => errs.push(new TextDecoder().decode(c)),
  });
  assert.deepEqual(result, {
    cniVersion: "0.3.1",
    ips: [{ address: "10.1.0.2/24" }],
  });
  assert.equal(
    await Deno.readTextFile(`${dir}/stdin`),
    new TextDecoder().decode(STDIN),
  );
  assert.equal(errs.join(""), "ADD\n");
  // No inherited variable (HOME) leaks into the delegate.
  assert.equal((await Deno.readTextFile(`${dir}/stdin.home`)).trim(), "0");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("execPlugin() re-throws the delegate's error object", async (t) => {
  await t.step("with its own code, msg and details", async () => {
    const dir = await pluginDir(
      'printf \'{"cniVersion":"1.0.0","code":100,"msg":"No available addresses","details":"pool"}\'; exit 1',
    );
    await assert.rejects(
      delegateAdd("fake", { env: {}, stdin: STDIN, path: [dir] }),
      {
        name: "CniError",
        code: 100,
        message: /^No available addresses$/,
        details: "pool",
      },
    );
    await Deno.remove(dir, { recursive: true });
  });
  await t.step("code 109 when unparsable, with stderr in details", async () => {
    const dir = await pluginDir('echo "panic: oops" >&2; exit 2');
    await assert.rejects(
      delegateCommand("fake", "DEL", {
        env: {},
        stdin: STDIN,
        path: [dir],
        stderr: () => {},
      }),
      {
        name: "CniError",
        code: 109,
        message: /Plugin "fake" failed DEL with exit code 2/,
        details: "panic: oops",
      },
    );
    await Deno.remove(dir, { recursive: true });
  });
  await t.step("code 109 when success output is not JSON", async () => {
    await assert.rejects(
      execPlugin("sh", "ADD", {
        env: {},
        stdin: STDIN,
        path: ["/bin"],
        exec: fakeExec(0, "not json"),
      }),
      {
        name: "CniError",
        code: 109,
        message: /Cannot decode the ADD output of plugin "sh"/,
      },
    );
  });
  await t.step("code 109 when ADD prints nothing or a bad result", async () => {
    await assert.rejects(
      delegateAdd("sh", {
        env: {},
        stdin: STDIN,
        path: ["/bin"],
        exec: fakeExec(0, ""),
      }),
      { name: "CniError", code: 109, message: /printed no result/ },
    );
    await assert.rejects(
      delegateAdd("sh", {
        env: {},
        stdin: STDIN,
        path: ["/bin"],
        exec: fakeExec(0, '{"ips":{}}'),
      }),
      { name: "CniError", code: 109, message: /Cannot decode the ADD result/ },
    );
  });
});

Deno.test("execPlugin() takes env, stdin and path from CmdArgs", async () => {
  const seen: { binary: string; env: Record<string, string>; stdin: string }[] =
    [];
  const out = await execPlugin("sh", "CHECK", {
    args: {
      command: "ADD",
      containerId: "c",
      netns: "/n",
      ifName: "eth0",
      args: { all: new Map(), ignoreUnknown: false, ips: [] },
      rawArgs: "",
      path: ["/bin"],
      stdin: STDIN,
      config: { cniVersion: "0.4.0", name: "n", type: "x" },
      env: { CNI_COMMAND: "ADD", CNI_CONTAINERID: "c" },
    },
    exec: fakeExec(0, "", seen),
  });
  assert.equal(out, undefined);
  assert.equal(seen[0]?.binary, "/bin/sh");
  assert.deepEqual(seen[0]?.env, {
    CNI_COMMAND: "CHECK",
    CNI_CONTAINERID: "c",
  });
  assert.equal(seen[0]?.stdin, new TextDecoder().decode(STDIN));
});

Deno.test("findPlugin() names the type and CNI_PATH when missing", async () => {
  const dir = await pluginDir("exit 0");
  assert.equal(await findPlugin("fake", ["", dir]), `${dir}/fake`);
  await assert.rejects(findPlugin("noexec", [dir]), {
    name: "CniError",
    code: 7,
    message: new RegExp(`^Cannot find plugin "noexec" in CNI_PATH "${dir}"$`),
  });
  await assert.rejects(findPlugin("x", ["/a", "/b"]), {
    name: "CniError",
    code: 7,
    message: /Cannot find plugin "x" in CNI_PATH "\/a:\/b"/,
  });
  await assert.rejects(findPlugin("../sh", ["/bin"]), {
    name: "CniError",
    code: 7,
    message: /must be a file name/,
  });
  await assert.rejects(execPlugin("x", "ADD", {}), {
    name: "TypeError",
    message: /need args, or env and stdin/,
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("execPlugin() drops LD_* and DYLD_* from the delegate's env and keeps the rest", async () => {
  const seen: { env: Record<string, string> }[] = [];
  await delegateCommand("sh", "DEL", {
    env: {
      LD_LIBRARY_PATH: "/opt/containerd/lib:",
      LD_PRELOAD: "/nonexistent/libx.so",
      LD_AUDIT: "x",
      DYLD_INSERT_LIBRARIES: "x",
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c",
      CNI_NETNS: "/var/run/netns/x",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/containerd/bin:/bin",
      PATH: "/opt/containerd/bin:/usr/bin",
      OLD_LD_PRELOAD: "kept: not a loader variable",
      ld_preload: "kept: names are case-sensitive",
    },
    stdin: STDIN,
    path: ["/bin"],
    exec: fakeExec(0, "", seen),
  });
  assert.deepEqual(seen[0]?.env, {
    CNI_COMMAND: "DEL",
    CNI_CONTAINERID: "c",
    CNI_NETNS: "/var/run/netns/x",
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/containerd/bin:/bin",
    PATH: "/opt/containerd/bin:/usr/bin",
    OLD_LD_PRELOAD: "kept: not a loader variable",
    ld_preload: "kept: names are case-sensitive",
  });
});

Deno.test({
  name:
    "delegateCommand() runs a delegate under containerd's LD_LIBRARY_PATH with --allow-run scoped to it",
  // Deno refuses to pass LD_* to a child unless --allow-run is unrestricted:
  // the narrow grant is the launcher's situation.
  permissions: { read: ["/usr/bin"], run: ["/usr/bin/true"] },
  async fn() {
    await delegateCommand("true", "DEL", {
      env: {
        LD_LIBRARY_PATH: "/opt/containerd/lib:",
        LD_PRELOAD: "/nonexistent/libcnitest.so",
        CNI_CONTAINERID: "c",
      },
      stdin: STDIN,
      path: ["/usr/bin"],
      stderr: () => {},
    });
  },
});

/**
 * Runs `findPlugin(type, path)` in a deno process granted read on `read`
 * only (and env), as a scoped plugin is; returns the path found or the
 * error's name, code and message.
 */
async function findPluginScoped(
  type: string,
  path: string[],
  read: string[],
): Promise<{ found?: string; name?: string; code?: number; message?: string }> {
  const dir = await Deno.makeTempDir({ prefix: "cnitest-invoke-" });
  try {
    const script = `${dir}/find.ts`;
    await Deno.writeTextFile(
      script,
      `import { findPlugin } from ${
        JSON.stringify(new URL("./invoke.ts", import.meta.url).href)
      };
let out;
try {
  out = { found: await findPlugin(Deno.args[0], Deno.args.slice(1)) };
} catch (err) {
  out = { name: err.name, code: err.code, message: err.message };
}
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(out)));
`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        "--no-prompt",
        `--allow-read=${read.join(",")}`,
        script,
        type,
        ...path,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    assert.ok(out.success, new TextDecoder().decode(out.stderr) + text);
    return JSON.parse(text);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("findPlugin() reports a lookup its permissions refuse, never 'not found' or a later match", async (t) => {
  const refused = await pluginDir("exit 0");
  const granted = await pluginDir("exit 0");
  try {
    await t.step("a refused directory first: code 5 naming it", async () => {
      const r = await findPluginScoped("fake", [refused, granted], [granted]);
      assert.equal(r.found, undefined);
      assert.equal(r.name, "CniError");
      assert.equal(r.code, 5);
      assert.equal(
        r.message,
        `Cannot look for plugin "fake" in CNI_PATH: this process has no read permission (--allow-read) on "${refused}/fake"`,
      );
    });
    await t.step("a granted match first is found", async () => {
      const r = await findPluginScoped("fake", [granted, refused], [granted]);
      assert.deepEqual(r, { found: `${granted}/fake` });
    });
    await t.step("missing in granted directories: code 7", async () => {
      const r = await findPluginScoped(
        "nope",
        [`${granted}/missing`, granted],
        [granted],
      );
      assert.equal(r.code, 7);
      assert.match(r.message ?? "", /^Cannot find plugin "nope" in CNI_PATH/);
    });
  } finally {
    await Deno.remove(refused, { recursive: true });
    await Deno.remove(granted, { recursive: true });
  }
});
