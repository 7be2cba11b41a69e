/**
 * Only root reaches `dist/azure-vnet-agent` (#14). The socket is 0600 in a
 * root-owned directory; the peer's uid is not checked (Deno gives the
 * accepted connection no fd for `SO_PEERCRED`, see `cni/agent/server.ts`),
 * so the file mode is the guard. With the directory opened to everyone
 * (0755), so that only the socket's own mode stands in the way, user
 * `nobody` cannot connect, and `dist/azure-vnet` run as `nobody` falls back
 * to the in-process path, which fails cleanly with one CNI error: the agent
 * served nothing and the state is untouched.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { assertStateMatchesKernel } from "../_support/azure_node.ts";
import {
  agentSocket,
  AZURE_VNET_DIST,
  AzureNode,
  servedLines,
  startNodeAgent,
} from "../../tools/testbed/mod.ts";

const AS_NOBODY = [
  "setpriv",
  "--reuid=65534",
  "--regid=65534",
  "--clear-groups",
];

Deno.test("a non-root peer cannot reach the agent; the plugin run as nobody fails cleanly", async (t) => {
  requireRoot();
  await using n = await AzureNode.create("10.99.0.0/16");
  n.argv = [AZURE_VNET_DIST];
  await Deno.chmod(n.dir, 0o755);
  const [p0, p1] = await n.pods(2);
  const conf = n.conf(8);
  await using _agent = await startNodeAgent(n);
  const root = await n.run("ADD", conf, n.env("root0", p0));
  assert.equal(root.code, 0, root.stdout);
  // The agent logs after its reply: wait for the root ADD's line, so that
  // a late write is not counted as the nobody call's.
  const served = (await servedLines(n.dir, { atLeast: 1 })).length;
  assert.equal(served, 1, "the root ADD was served by the agent");
  const state = await Deno.readTextFile(n.statePath);

  await t.step("connect() as nobody is refused with EACCES", async () => {
    const st = await Deno.lstat(agentSocket(n.dir));
    assert.equal(st.uid, 0);
    assert.equal((st.mode ?? 0) & 0o777, 0o600);
    const script = [
      "import socket, sys",
      "s = socket.socket(socket.AF_UNIX)",
      "try:",
      "    s.connect(sys.argv[1])",
      "    print('connected')",
      "except PermissionError:",
      "    print('EACCES')",
    ].join("\n");
    const out = await new Deno.Command(AS_NOBODY[0] ?? "", {
      args: [
        ...AS_NOBODY.slice(1),
        "/usr/bin/python3",
        "-c",
        script,
        agentSocket(n.dir),
      ],
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim();
    assert.equal(text, "EACCES", new TextDecoder().decode(out.stderr));
  });

  await t.step(
    "dist/azure-vnet as nobody: one CNI error, nothing served",
    async () => {
      n.argv = [...AS_NOBODY, AZURE_VNET_DIST];
      const r = await n.run("ADD", conf, n.env("nobody0", p1));
      n.argv = [AZURE_VNET_DIST];
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.equal(typeof r.json?.code, "number", r.stdout);
      assert.equal(typeof r.json?.msg, "string", r.stdout);
      assert.equal(
        (await servedLines(n.dir)).length,
        served,
        "the agent served it",
      );
      assert.equal(await Deno.readTextFile(n.statePath), state);
      assert.equal((await assertStateMatchesKernel(n)).size, 1);
    },
  );
});
