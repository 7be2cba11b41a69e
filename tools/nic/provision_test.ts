import assert from "node:assert/strict";
import { useEmulatorIdentity } from "../../tests/_support/identity.ts";
import { getImdsInterfaces, getInterfaceInfo } from "@vnet/azure";
import {
  addVm,
  emptyState,
  type Emulator,
  generateTls,
  startEmulator,
} from "../sandbox/emulator/mod.ts";
import { main } from "./cli.ts";
import { parseCount, parseIpv6Count } from "./provision.ts";

const WIRE = "/machine/plugins?comp=nmagent&type=getinterfaceinfov1";
const tls = await generateTls({ removeOnUnload: true });

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

/**
 * Runs the tool and checks that it succeeded, said `said` on stderr and
 * left vm0's NIC untouched (same etag).
 */
async function runUnchanged(
  emu: Emulator,
  args: string[],
  said: RegExp,
): Promise<Run> {
  const etag = emu.state.vms[0]?.nic.etag;
  const r = await runOk(args, said);
  assert.equal(emu.state.vms[0]?.nic.etag, etag);
  return r;
}

/** Runs the tool and checks that it succeeded and said `said` on stderr. */
async function runOk(args: string[], said: RegExp): Promise<Run> {
  const r = await run(args);
  assert.equal(r.code, 0, r.err.join("\n"));
  assert.ok(r.err.some((l) => said.test(l)), r.err.join("\n"));
  return r;
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
    const common = endpoints(emu, dir);
    try {
      await t.step("provision --count 4 adds ipconfig2..4", async () => {
        const r = await runOk(
          ["provision", "--count", "4", ...common],
          /add 3, remove 0/,
        );
        assert.deepEqual(r.out, [
          "ipconfig1\t10.240.0.4\tprimary",
          "ipconfig2\t10.240.0.7",
          "ipconfig3\t10.240.0.8",
          "ipconfig4\t10.240.0.9",
        ]);
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
        const r = await runUnchanged(
          emu,
          ["provision", "--count", "4", ...common],
          /already has 4 ipconfigs/,
        );
        assert.equal(r.out.length, 4);
      });
      await t.step("--dry-run plans but changes nothing", async () => {
        await runUnchanged(
          emu,
          ["provision", "--count", "6", "--dry-run", ...common],
          /Dry run: would add \[ipconfig5, ipconfig6\]/,
        );
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

Deno.test("main() -h and --help print the usage on stdout and exit 0", async (t) => {
  for (const args of [["--help"], ["-h"], ["provision", "--help"]]) {
    await t.step(args.join(" "), async () => {
      const r = await run(args);
      assert.equal(r.code, 0, r.err.join("\n"));
      assert.deepEqual(r.err, []);
      assert.match(
        r.out.join("\n"),
        /^usage: deno run -A tools\/nic\/main\.ts provision /,
      );
      assert.match(r.out.join("\n"), /--force/);
    });
  }
});

Deno.test("main() rejects unknown options and commands with exit 2", async () => {
  assert.equal((await run(["provision", "--nope"])).code, 2);
  assert.equal((await run(["grow"])).code, 2);
});

/** Writes `<dir>/azure-vnet-ipam.json` with one pool of these addresses. */
async function writeIpamState(
  dir: string,
  pool: string,
  addresses: Record<string, { containerId?: string; ifName?: string }>,
): Promise<void> {
  await Deno.writeTextFile(
    `${dir}/azure-vnet-ipam.json`,
    JSON.stringify({ version: 1, pools: { [pool]: { addresses } } }),
  );
}

/** The emulator's IMDS and ARM for the tool, and an IPAM state dir. */
function endpoints(emu: { httpUrl: string; httpsUrl: string }, dir: string) {
  return [
    "--imds-url",
    emu.httpUrl,
    "--arm-endpoint",
    emu.httpsUrl,
    "--ca-file",
    tls.caFile,
    "--state-dir",
    dir,
  ];
}

Deno.test({
  name: "main() provision --ipv6-count gives a dual-stack NIC K IPv6 ipconfigs",
  ...SDK_TEST,
  async fn(t) {
    const state = emptyState();
    const subnet = { prefix: "10.240.0.0/16", ipv6Prefix: "fd00:10:240::/64" };
    addVm(state, {
      name: "vm0",
      macAddress: "00:0d:3a:f9:dc:a6",
      subnet,
      ipv6ConfigCount: 1,
    });
    addVm(state, { name: "vm1", subnet, ipv6ConfigCount: 1 });
    await using emu = await startEmulator({ state, tls });
    Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.httpUrl);
    const dir = await Deno.makeTempDir();
    const common = endpoints(emu, dir);
    try {
      await t.step("without --ipv6-count the IPv6 ipconfig stays", async () => {
        const r = await runOk(
          ["provision", "--count", "3", ...common],
          /has 1 IPv4 and 1 IPv6 ipconfigs; want 3 IPv4 and 1 IPv6: add 2, remove 0/,
        );
        assert.deepEqual(r.out, [
          "ipconfig1\t10.240.0.4\tprimary",
          "ipconfig2\t10.240.0.6",
          "ipconfig3\t10.240.0.7",
          "ipv6config1\tfd00:10:240::4",
        ]);
      });
      await t.step(
        "--ipv6-count 3 adds ipv6config2..3 lowest-free",
        async () => {
          const r = await run([
            "provision",
            "--count",
            "3",
            "--ipv6-count",
            "3",
            ...common,
          ]);
          assert.equal(r.code, 0, r.err.join("\n"));
          // vm1 holds fd00:10:240::5.
          assert.deepEqual(r.out.slice(3), [
            "ipv6config1\tfd00:10:240::4",
            "ipv6config2\tfd00:10:240::6",
            "ipv6config3\tfd00:10:240::7",
          ]);
          assert.ok(
            r.err.includes("IMDS reports all 6 addresses"),
            r.err.join("\n"),
          );
        },
      );
      await t.step(
        "the wireserver and IMDS report the IPv6 addresses",
        async () => {
          const v6 = {
            prefix: "fd00:10:240::/64",
            addresses: [
              { address: "fd00:10:240::4", isPrimary: true },
              { address: "fd00:10:240::6", isPrimary: false },
              { address: "fd00:10:240::7", isPrimary: false },
            ],
          };
          const wire = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
          assert.deepEqual(wire[0]?.subnets[1], v6);
          const imds = await getImdsInterfaces({ baseUrl: emu.httpUrl });
          assert.deepEqual(imds[0]?.subnets[1], v6);
        },
      );
      await t.step("a re-run changes nothing", async () => {
        await runUnchanged(
          emu,
          ["provision", "--count=3", "--ipv6-count=3", ...common],
          /already has 3 IPv4 and 3 IPv6 ipconfigs/,
        );
      });
      await t.step("an IPv6 scale-down is refused while in use", async () => {
        await writeIpamState(dir, "fd00:10:240::/64", {
          "fd00:10:240::7": { containerId: "c0ffee" },
        });
        const r = await run([
          "provision",
          "--count=3",
          "--ipv6-count=1",
          ...common,
        ]);
        assert.equal(r.code, 1);
        assert.match(
          r.err.at(-1) ?? "",
          /^error: Cannot scale NIC "vm0-nic" down to 3 IPv4 and 1 IPv6: ipv6config3 \(fd00:10:240::7\) in use/,
        );
        assert.equal(emu.state.vms[0]?.nic.ipConfigurations.length, 6);
      });
      await t.step("and keeps the node's own IPv6 once free", async () => {
        await writeIpamState(dir, "fd00:10:240::/64", {
          "fd00:10:240::7": { containerId: "" },
        });
        const r = await run([
          "provision",
          "--count=3",
          "--ipv6-count=1",
          ...common,
        ]);
        assert.equal(r.code, 0, r.err.join("\n"));
        assert.deepEqual(r.out.slice(3), ["ipv6config1\tfd00:10:240::4"]);
        const wire = await getInterfaceInfo({ url: `${emu.httpUrl}${WIRE}` });
        assert.deepEqual(
          wire[0]?.subnets.map((s) => s.addresses.length),
          [3, 1],
        );
      });
    } finally {
      Deno.env.delete("AZURE_POD_IDENTITY_AUTHORITY_HOST");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "main() provision --ipv6-count fails with ARM's error on an IPv4-only subnet",
  ...SDK_TEST,
  async fn() {
    const state = emptyState();
    addVm(state, { name: "vm0" });
    await using emu = await startEmulator({ state, tls });
    Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.httpUrl);
    const dir = await Deno.makeTempDir();
    try {
      const r = await run([
        "provision",
        "--count=2",
        "--ipv6-count=1",
        ...endpoints(emu, dir),
      ]);
      assert.equal(r.code, 1);
      assert.match(r.err.at(-1) ?? "", /^error: .*no IPv6 address prefix/);
      assert.equal(emu.state.vms[0]?.nic.ipConfigurations.length, 1);
    } finally {
      Deno.env.delete("AZURE_POD_IDENTITY_AUTHORITY_HOST");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("main() provision rejects a bad --ipv6-count with exit 2", async (t) => {
  for (
    const [count, k] of [["4", "-1"], ["4", "1.5"], ["4", "x"], ["4", "253"], [
      "256",
      "1",
    ]]
  ) {
    await t.step(`--count ${count} --ipv6-count ${k}`, async () => {
      const r = await run([
        "provision",
        `--count=${count}`,
        `--ipv6-count=${k}`,
        "--imds-url",
        "http://127.0.0.1:9",
      ]);
      assert.equal(r.code, 2);
      assert.match(
        r.err.join("\n"),
        /ipv6-count must be an integer in 0\.\.\d+ \(at most 256 ipconfigs/,
      );
    });
  }
  assert.equal(parseIpv6Count("252", 4), 252);
  assert.throws(() => parseIpv6Count("1", 256), {
    name: "RangeError",
    message: /0\.\.0/,
  });
});

Deno.test({
  name:
    "main() provision refuses a scale-down without a readable IPAM state file unless --force, and finds it through AZURE_VNET_STATE_DIR",
  ...SDK_TEST,
  async fn(t) {
    const state = emptyState();
    addVm(state, { name: "vm0", ipConfigCount: 4 });
    await using emu = await startEmulator({ state, tls });
    Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.httpUrl);
    const dir = await Deno.makeTempDir();
    const common = endpoints(emu, dir);
    const ipconfigs = () => emu.state.vms[0]?.nic.ipConfigurations.length;
    try {
      await t.step("no state file: refused, NIC unchanged", async () => {
        const r = await run(["provision", "--count", "2", ...common]);
        assert.equal(r.code, 1);
        assert.match(
          r.err.at(-1) ?? "",
          new RegExp(
            `^error: Cannot scale NIC "vm0-nic" down to 2: no IPAM state file "${dir}/azure-vnet-ipam\\.json" to tell which addresses are in use; .*--state-dir \\(or AZURE_VNET_STATE_DIR\\).*--force`,
          ),
        );
        assert.equal(ipconfigs(), 4);
      });
      await t.step("a state file that does not parse: refused", async () => {
        await Deno.writeTextFile(`${dir}/azure-vnet-ipam.json`, "{");
        const r = await run(["provision", "--count", "2", ...common]);
        assert.equal(r.code, 1);
        assert.match(
          r.err.at(-1) ?? "",
          /^error: Cannot scale NIC "vm0-nic" down to 2: cannot read IPAM state file ".*" \(Cannot parse IPAM state/,
        );
        assert.equal(ipconfigs(), 4);
        await Deno.remove(`${dir}/azure-vnet-ipam.json`);
      });
      await t.step(
        "without --state-dir the state is AZURE_VNET_STATE_DIR's",
        async () => {
          const ipconfig2 = emu.state.vms[0]?.nic.ipConfigurations.find((c) =>
            c.name === "ipconfig2"
          );
          const busy = ipconfig2?.privateIPAddress ?? "";
          await writeIpamState(dir, "10.240.0.0/16", {
            [busy]: { containerId: "c0ffee" },
          });
          Deno.env.set("AZURE_VNET_STATE_DIR", dir);
          try {
            const r = await run([
              "provision",
              "--count",
              "1",
              ...common.slice(0, -2),
            ]);
            assert.equal(r.code, 1);
            assert.match(
              r.err.at(-1) ?? "",
              new RegExp(
                `ipconfig2 \\(${
                  busy.replaceAll(".", "\\.")
                }\\) in use per ${dir}/azure-vnet-ipam\\.json`,
              ),
            );
          } finally {
            Deno.env.delete("AZURE_VNET_STATE_DIR");
          }
          assert.equal(ipconfigs(), 4);
          await Deno.remove(`${dir}/azure-vnet-ipam.json`);
        },
      );
      await t.step("--force scales down anyway, with a warning", async () => {
        const r = await run([
          "provision",
          "--count",
          "2",
          "--force",
          ...common,
        ]);
        assert.equal(r.code, 0, r.err.join("\n"));
        assert.ok(
          r.err.some((l) => /^Warning: no IPAM state file .*--force/.test(l)),
          r.err.join("\n"),
        );
        assert.equal(r.out.length, 2);
        assert.equal(ipconfigs(), 2);
      });
    } finally {
      Deno.env.delete("AZURE_POD_IDENTITY_AUTHORITY_HOST");
      await Deno.remove(dir, { recursive: true });
    }
  },
});
