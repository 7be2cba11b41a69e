import assert from "node:assert/strict";
import { useEmulatorIdentity } from "../../tests/_support/identity.ts";
import { getImdsInterfaces, getInterfaceInfo } from "@vnet/azure";
import {
  addVm,
  emptyState,
  generateTls,
  startEmulator,
} from "../sandbox/emulator/mod.ts";
import { main } from "./cli.ts";
import { parseCount } from "./provision.ts";

const WIRE = "/machine/plugins?comp=nmagent&type=getinterfaceinfov1";
const tls = await generateTls();

// ManagedIdentityCredential must use the emulator's IMDS token endpoint,
// never a stray App Service / Cloud Shell / Arc source.
useEmulatorIdentity();

interface Run {
  code: number;
  out: string[];
  err: string[];
}

async function run(args: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    stdout: (l) => out.push(l),
    stderr: (l) => err.push(l),
    pollIntervalMs: 20,
  });
  return { code, out, err };
}

// The Azure SDK's node:https client keeps keep-alive sockets open after the
// calls finish, so the resource and op sanitizers are off for SDK tests.
const SDK_TEST = { sanitizeResources: false, sanitizeOps: false } as const;

Deno.test({
  name: "main() provision grows, re-runs idempotently and scales down safely",
  ...SDK_TEST,
  async fn(t) {
    const state = emptyState();
    addVm(state, { name: "vm0", macAddress: "00:0d:3a:f9:dc:a6" });
    addVm(state, { name: "vm1", ipConfigCount: 2 });
    await using emu = await startEmulator({ state, tls });
    Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.httpUrl);
    const dir = await Deno.makeTempDir();
    const common = [
      "--imds-url",
      emu.httpUrl,
      "--arm-endpoint",
      emu.httpsUrl,
      "--ca-file",
      tls.caFile,
      "--state-dir",
      dir,
    ];
    try {
      await t.step("provision --count 4 adds ipconfig2..4", async () => {
        const r = await run(["provision", "--count", "4", ...common]);
        assert.equal(r.code, 0, r.err.join("\n"));
        assert.deepEqual(r.out, [
          "ipconfig1\t10.240.0.4\tprimary",
          "ipconfig2\t10.240.0.7",
          "ipconfig3\t10.240.0.8",
          "ipconfig4\t10.240.0.9",
        ]);
        assert.ok(
          r.err.some((l) => /add 3, remove 0/.test(l)),
          r.err.join("\n"),
        );
      });
      await t.step(
        "the PUT changed what the wireserver and IMDS report",
        async () => {
          const wire = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
          assert.deepEqual(
            wire[0]?.subnets[0]?.addresses,
            [
              { address: "10.240.0.4", isPrimary: true },
              { address: "10.240.0.7", isPrimary: false },
              { address: "10.240.0.8", isPrimary: false },
              { address: "10.240.0.9", isPrimary: false },
            ],
          );
          const imds = await getImdsInterfaces({ baseUrl: emu.httpUrl });
          assert.equal(imds[0]?.subnets[0]?.addresses.length, 4);
          const vm1 = await getInterfaceInfo({
            url: `${emu.httpUrl}${WIRE}&vm=vm1`,
          });
          assert.equal(vm1[0]?.subnets[0]?.addresses.length, 2);
        },
      );
      await t.step("a re-run with the same count changes nothing", async () => {
        const etag = emu.state.vms[0]?.nic.etag;
        const r = await run(["provision", "--count", "4", ...common]);
        assert.equal(r.code, 0);
        assert.equal(r.out.length, 4);
        assert.ok(r.err.some((l) => /already has 4 ipconfigs/.test(l)));
        assert.equal(emu.state.vms[0]?.nic.etag, etag);
      });
      await t.step("--dry-run plans but changes nothing", async () => {
        const etag = emu.state.vms[0]?.nic.etag;
        const r = await run([
          "provision",
          "--count",
          "6",
          "--dry-run",
          ...common,
        ]);
        assert.equal(r.code, 0);
        assert.ok(
          r.err.some((l) =>
            /Dry run: would add \[ipconfig5, ipconfig6\]/.test(l)
          ),
        );
        assert.equal(emu.state.vms[0]?.nic.etag, etag);
        assert.equal(emu.state.vms[0]?.nic.ipConfigurations.length, 4);
      });
      await t.step(
        "scale-down is refused while an address is in use",
        async () => {
          await Deno.writeTextFile(
            `${dir}/azure-vnet-ipam.json`,
            JSON.stringify({
              version: 1,
              pools: {
                "10.240.0.0/16": {
                  addresses: {
                    "10.240.0.7": { containerId: "" },
                    "10.240.0.9": { containerId: "c0ffee", ifName: "eth0" },
                  },
                },
              },
            }),
          );
          const r = await run(["provision", "--count", "2", ...common]);
          assert.equal(r.code, 1);
          assert.match(
            r.err.at(-1) ?? "",
            /^error: Cannot scale NIC "vm0-nic" down to 2: ipconfig4 \(10\.240\.0\.9\) in use/,
          );
          assert.equal(emu.state.vms[0]?.nic.ipConfigurations.length, 4);
        },
      );
      await t.step(
        "scale-down proceeds once the addresses are free",
        async () => {
          await Deno.writeTextFile(
            `${dir}/azure-vnet-ipam.json`,
            JSON.stringify({
              version: 1,
              pools: { "10.240.0.0/16": { addresses: { "10.240.0.9": {} } } },
            }),
          );
          const r = await run(["provision", "--count", "2", ...common]);
          assert.equal(r.code, 0, r.err.join("\n"));
          assert.deepEqual(r.out, [
            "ipconfig1\t10.240.0.4\tprimary",
            "ipconfig2\t10.240.0.7",
          ]);
          const wire = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
          assert.equal(wire[0]?.subnets[0]?.addresses.length, 2);
        },
      );
      await t.step("--nic-id addresses the NIC directly", async () => {
        const vm = emu.state.vms[0];
        const id =
          `/subscriptions/${vm?.subscriptionId}/resourceGroups/${vm?.resourceGroupName}/providers/Microsoft.Network/networkInterfaces/${vm?.nic.name}`;
        const r = await run([
          "provision",
          "--count",
          "3",
          "--nic-id",
          id,
          ...common,
        ]);
        assert.equal(r.code, 0, r.err.join("\n"));
        assert.equal(r.out.length, 3);
      });
    } finally {
      Deno.env.delete("AZURE_POD_IDENTITY_AUTHORITY_HOST");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "main() provision refuses a scale-set instance NIC",
  ...SDK_TEST,
  async fn() {
    const state = emptyState();
    addVm(state, { name: "0", vmScaleSetName: "aks-nodepool1-vmss" });
    await using emu = await startEmulator({ state, tls });
    const r = await run([
      "provision",
      "--count",
      "4",
      "--imds-url",
      emu.httpUrl,
      "--arm-endpoint",
      emu.httpsUrl,
    ]);
    assert.equal(r.code, 1);
    assert.match(
      r.err.at(-1) ?? "",
      /VM scale set "aks-nodepool1-vmss".*scale set model/,
    );
  },
});

Deno.test("main() provision rejects a bad --count with exit 2", async (t) => {
  for (const count of ["0", "257", "1.5", "abc", "-3", ""]) {
    await t.step(JSON.stringify(count), async () => {
      const r = await run([
        "provision",
        `--count=${count}`,
        "--imds-url",
        "http://127.0.0.1:9",
      ]);
      assert.equal(r.code, 2);
      assert.match(r.err.join("\n"), /count must be an integer in 1\.\.256/);
    });
  }
  assert.throws(() => parseCount("300"), {
    name: "RangeError",
    message: /got "300"/,
  });
});

Deno.test("main() rejects unknown options and commands with exit 2", async () => {
  assert.equal((await run(["provision", "--nope"])).code, 2);
  assert.equal((await run(["grow"])).code, 2);
});
