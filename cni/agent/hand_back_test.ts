import assert from "node:assert/strict";
import type { AgentRequest } from "@vnet/forward";
import { handBackFor, handBackReason, requiredHandBack } from "./hand_back.ts";

const ENCODER = new TextEncoder();

async function ask(
  config: unknown,
  env: Record<string, string>,
  plugin: AgentRequest["plugin"] = "azure-vnet",
): Promise<string | undefined> {
  return await handBackReason(
    { plugin, env: { CNI_COMMAND: "ADD", ...env }, stdin: "" },
    ENCODER.encode(JSON.stringify(config)),
  );
}

Deno.test("handBackReason() serves the in-process IPAM and hands back azure-vnet-ipam run as a plugin", async () => {
  const ours = { ipam: { type: "azure-vnet-ipam" } };
  assert.equal(await ask(ours, { CNI_PATH: "/opt/cni/bin" }), undefined);
  assert.match(
    await ask({ ...ours, ipamExec: true }, { CNI_PATH: "/opt/cni/bin" }) ?? "",
    /azure-vnet-ipam forwards to this agent/,
  );
  // The IPAM plugin's own calls, and configs the agent answers as invalid.
  assert.equal(await ask(ours, {}, "azure-vnet-ipam"), undefined);
  assert.equal(await ask({ ipam: { type: "a/b" } }, {}), undefined);
  assert.equal(await ask("not an object", {}), undefined);
});

Deno.test("handBackReason() serves a delegate this process may find and run, else hands it back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/host-local`, "#!/bin/sh\n", {
      mode: 0o755,
    });
    const conf = { ipam: { type: "host-local" } };
    // The unit tests run with -A: everything is granted.
    assert.equal(
      await ask(conf, { CNI_PATH: `/nonexistent:${dir}` }),
      undefined,
    );
    assert.equal(
      await ask({ ipam: { type: "absent" } }, { CNI_PATH: dir }),
      undefined,
    );
    // Without the grants, in a process with scoped permissions.
    const script = `
      import { handBackReason } from "${import.meta.resolve("./hand_back.ts")}";
      const stdin = new TextEncoder().encode(${
      JSON.stringify(JSON.stringify(conf))
    });
      const env = { CNI_COMMAND: "ADD", CNI_PATH: ${JSON.stringify(dir)} };
      console.log(JSON.stringify(await handBackReason({ plugin: "azure-vnet", env, stdin: "" }, stdin) ?? null));
    `;
    await Deno.writeTextFile(`${dir}/ask.ts`, script);
    const run = async (flags: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--no-prompt",
          `--config=${new URL("../../deno.json", import.meta.url).pathname}`,
          ...flags,
          `${dir}/ask.ts`,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout).trim();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return JSON.parse(text) as string | null;
    };
    assert.match(
      (await run([`--allow-read=${Deno.cwd()}`])) ?? "",
      /may not look for ".*host-local"/,
    );
    assert.match(
      (await run([`--allow-read`])) ?? "",
      /may not run ".*host-local"/,
    );
    assert.equal(
      await run([`--allow-read`, `--allow-run=${dir}/host-local`]),
      null,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("requiredHandBack() in a container: every call of a network with a delegate IPAM, and nothing else", async (t) => {
  const inContainer = { inContainer: true };
  const encode = (c: unknown) => ENCODER.encode(JSON.stringify(c));
  const hostLocal = encode({ ipam: { type: "host-local" } });
  for (const command of ["ADD", "DEL", "CHECK", "GC", "STATUS"]) {
    await t.step(command, () => {
      const request = {
        plugin: "azure-vnet" as const,
        env: { CNI_COMMAND: command },
        stdin: "",
      };
      assert.match(
        requiredHandBack(request, { stdin: hostLocal, policy: inContainer }) ??
          "",
        /runs in a container: its delegate IPAM plugin "host-local" must run on the host/,
      );
      assert.equal(
        requiredHandBack(request, {
          stdin: hostLocal,
          policy: { inContainer: false },
        }),
        undefined,
      );
    });
  }
  await t.step(
    "our in-process IPAM, ipamExec, the IPAM plugin's own calls",
    () => {
      const add = {
        plugin: "azure-vnet" as const,
        env: { CNI_COMMAND: "ADD" },
        stdin: "",
      };
      const ours = { ipam: { type: "azure-vnet-ipam" } };
      const policy = inContainer;
      assert.equal(
        requiredHandBack(add, { stdin: encode(ours), policy }),
        undefined,
      );
      assert.match(
        requiredHandBack(add, {
          stdin: encode({ ...ours, ipamExec: true }),
          policy,
        }) ?? "",
        /"azure-vnet-ipam" must run on the host/,
      );
      assert.equal(
        requiredHandBack({ ...add, plugin: "azure-vnet-ipam" }, {
          stdin: encode(ours),
          policy,
        }),
        undefined,
      );
      assert.equal(
        requiredHandBack(add, { stdin: encode("not a config"), policy }),
        undefined,
      );
    },
  );
});

Deno.test("handBackFor() makes the container's hand-back required, and the others not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/host-local`, "#!/bin/sh\n", {
      mode: 0o755,
    });
    const request = {
      plugin: "azure-vnet" as const,
      env: { CNI_COMMAND: "ADD", CNI_PATH: dir },
      stdin: "",
    };
    const hostLocal = ENCODER.encode('{"ipam":{"type":"host-local"}}');
    const exec = ENCODER.encode(
      '{"ipam":{"type":"azure-vnet-ipam"},"ipamExec":true}',
    );
    const inContainer = handBackFor({ inContainer: true });
    const onHost = handBackFor({ inContainer: false });
    assert.ok((await inContainer(request, hostLocal))?.required);
    // On the host, host-local runs in the agent (-A grants it).
    assert.equal(await onHost(request, hostLocal), undefined);
    assert.deepEqual(await onHost(request, exec), {
      reason: "its IPAM plugin azure-vnet-ipam forwards to this agent",
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("requiredHandBack() hands back every bridge-mode azure-vnet call while the node's ebtables is not the agent's", async (t) => {
  const policy = { inContainer: false, bridgeRefused: "legacy vs nft" };
  const encode = (c: unknown) => ENCODER.encode(JSON.stringify(c));
  const ours = { ipam: { type: "azure-vnet-ipam" } };
  const call = (plugin: AgentRequest["plugin"], command: string) => ({
    plugin,
    env: { CNI_COMMAND: command },
    stdin: "",
  });
  for (const mode of [undefined, "", "bridge"]) {
    await t.step(`mode ${JSON.stringify(mode)}`, () => {
      for (const command of ["ADD", "DEL", "CHECK", "GC", "STATUS"]) {
        assert.equal(
          requiredHandBack(call("azure-vnet", command), {
            stdin: encode({ ...ours, mode }),
            policy,
          }),
          "bridge mode runs on the node's ebtables: legacy vs nft",
        );
      }
    });
  }
  await t.step("transparent mode, the IPAM plugin, no config: served", () => {
    for (
      const [plugin, conf] of [
        ["azure-vnet", { ...ours, mode: "transparent" }],
        ["azure-vnet-ipam", ours],
        ["azure-vnet", "not a config"],
      ] as const
    ) {
      assert.equal(
        requiredHandBack(call(plugin, "ADD"), { stdin: encode(conf), policy }),
        undefined,
      );
    }
  });
});
