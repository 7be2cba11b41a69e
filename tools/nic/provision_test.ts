import assert from "node:assert/strict";
import { useEmulatorIdentity } from "../../tests/_support/identity.ts";
import { azureMac } from "@vnet/address";
import { getImdsInterfaces, getInterfaceInfo } from "@vnet/azure";
import { type ArmNic, openNic, type OpenNicOptions } from "@vnet/arm";
import {
  addVm,
  emptyState,
  type Emulator,
  generateTls,
  startEmulator,
} from "../sandbox/emulator/mod.ts";
import { CniError } from "@vnet/cni";
import { IPAM_STATE_FILE, IpamEngine, readIpamState } from "@vnet/ipam";
import { ipamConfig } from "../../ipam/_testing.ts";
import { main } from "./cli.ts";
import { parseCount, parseIpv6Count, provision } from "./provision.ts";

const WIRE = "/machine/plugins?comp=nmagent&type=getinterfaceinfov1";
const MAC = "00:0d:3a:f9:dc:a6";
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
          await writeIpamState(dir, {
            mac: MAC,
            addresses: {
              "10.240.0.7": {},
              "10.240.0.8": {},
              "10.240.0.9": { containerId: "c0ffee", ifName: "eth0" },
            },
          });
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
          await writeIpamState(dir, {
            mac: MAC,
            addresses: { "10.240.0.9": {} },
          });
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

/**
 * Writes `<dir>/azure-vnet-ipam.json` with one pool (default the IPv4
 * 10.240.0.0/16) of NIC `mac` holding these addresses.
 */
async function writeIpamState(
  dir: string,
  spec: {
    mac: string;
    pool?: string;
    addresses: Record<string, { containerId?: string; ifName?: string }>;
  },
): Promise<void> {
  const subnet = spec.pool ?? "10.240.0.0/16";
  const ipv6 = subnet.includes(":");
  const pool = {
    subnet,
    gateway: ipv6 ? "fd00:10:240::1" : "10.240.0.1",
    macAddress: azureMac(spec.mac),
    priority: 0,
    primaryIps: [ipv6 ? "fd00:10:240::4" : "10.240.0.4"],
    addresses: spec.addresses,
  };
  await Deno.writeTextFile(
    `${dir}/${IPAM_STATE_FILE}`,
    JSON.stringify({
      version: 1,
      lastRefresh: Date.now(),
      bootId: "b",
      pools: { [subnet]: pool },
    }),
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
        await writeIpamState(dir, {
          mac: MAC,
          pool: "fd00:10:240::/64",
          addresses: { "fd00:10:240::7": { containerId: "c0ffee" } },
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
        await writeIpamState(dir, {
          mac: MAC,
          pool: "fd00:10:240::/64",
          addresses: { "fd00:10:240::7": {} },
        });
        const r = await run([
          "provision",
          "--count=3",
          "--ipv6-count=1",
          ...common,
        ]);
        assert.equal(r.code, 0, r.err.join("\n"));
        assert.deepEqual(r.out.slice(3), ["ipv6config1\tfd00:10:240::4"]);
        // The IPAM syncs IPv4 pools only: nothing to withdraw.
        assert.deepEqual(r.err.filter((l) => l.startsWith("Withdrawing")), []);
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
          /^error: Cannot scale NIC "vm0-nic" down to 2: cannot read IPAM state file ".*" \(State file ".*" is corrupt \(invalid JSON\)/,
        );
        assert.equal(ipconfigs(), 4);
        await Deno.remove(`${dir}/azure-vnet-ipam.json`);
      });
      await t.step("a state file of another shape: refused", async () => {
        await Deno.writeTextFile(
          `${dir}/azure-vnet-ipam.json`,
          '{"pools":{"p":{"addresses":{}}}}',
        );
        const r = await run(["provision", "--count", "2", ...common]);
        assert.equal(r.code, 1);
        assert.match(
          r.err.at(-1) ?? "",
          /^error: Cannot scale NIC "vm0-nic" down to 2: cannot read IPAM state file ".*" \(Cannot use IPAM state file ".*": unsupported format version/,
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
          await writeIpamState(dir, {
            mac: emu.state.vms[0]?.nic.macAddress ?? "",
            addresses: { [busy]: { containerId: "c0ffee" } },
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
        // Without a state file the tool leaves the IPAM alone: no file and
        // no lock made in a directory that may not be the plugins'.
        const names = await Array.fromAsync(Deno.readDir(dir), (e) => e.name);
        assert.deepEqual(
          names.filter((n) =>
            n === IPAM_STATE_FILE || n === `${IPAM_STATE_FILE}.lock`
          ),
          [],
        );
      });
    } finally {
      Deno.env.delete("AZURE_POD_IDENTITY_AUTHORITY_HOST");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** vm0 with `ipConfigCount` ipconfigs, and pods reserving from its IPAM. */
interface IpamRig extends AsyncDisposable {
  emu: Emulator;
  dir: string;
  pods: IpamEngine;
  /** The options `provision()` needs to reach the emulator and the IPAM. */
  options: {
    imdsUrl: string;
    armEndpoint: string;
    caFile: string;
    stateDir: string;
    pollIntervalMs: number;
  };
  /** Reserves an address for pod `name` (the wireserver is the source). */
  reserve(name: string, requestedIp?: string): Promise<string>;
  /** The addresses on vm0's NIC, as ARM has them. */
  onNic(): Set<string>;
  /** Free and held addresses in the IPAM state file. */
  ipam(): Promise<{ free: string[]; held: Map<string, string> }>;
}

async function ipamRig(ipConfigCount: number): Promise<IpamRig> {
  const state = emptyState();
  addVm(state, { name: "vm0", macAddress: MAC, ipConfigCount });
  const emu = await startEmulator({ state, tls });
  Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.httpUrl);
  const dir = await Deno.makeTempDir({ prefix: "nic-tool-" });
  const config = ipamConfig({
    queryUrl: `${emu.httpUrl}${WIRE}`,
    queryInterval: "10",
  });
  const pods = new IpamEngine({
    stateDir: dir,
    hostMacs: () => [{ name: "eth0", mac: "000d3af9dca6" }],
  });
  return {
    emu,
    dir,
    pods,
    options: {
      imdsUrl: emu.httpUrl,
      armEndpoint: emu.httpsUrl,
      caFile: tls.caFile,
      stateDir: dir,
      pollIntervalMs: 20,
    },
    async reserve(name, requestedIp) {
      const r = await pods.reserve({ containerId: name, ifName: "eth0" }, {
        config,
        network: "azure",
        requestedIp,
      });
      return r.ip;
    },
    onNic() {
      return new Set(
        (emu.state.vms[0]?.nic.ipConfigurations ?? []).map((c) =>
          c.privateIPAddress ?? ""
        ),
      );
    },
    async ipam() {
      const s = await readIpamState(`${dir}/${IPAM_STATE_FILE}`);
      const free: string[] = [];
      const held = new Map<string, string>();
      for (const pool of Object.values(s?.pools ?? {})) {
        for (const [ip, rec] of Object.entries(pool.addresses)) {
          if (rec.containerId === undefined) free.push(ip);
          else held.set(rec.containerId, ip);
        }
      }
      return { free, held };
    },
    async [Symbol.asyncDispose]() {
      Deno.env.delete("AZURE_POD_IDENTITY_AUTHORITY_HOST");
      await emu[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A reserve's address, or its CniError's code (settles at once). */
function outcome(reserve: Promise<string>): Promise<string | number> {
  return reserve.catch((err) => {
    if (!(err instanceof CniError)) throw err;
    return err.code;
  });
}

Deno.test({
  name:
    "provision() scale-down withdraws the addresses from the IPAM first: ADDs during and after the PUT get none of them",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(6);
    assert.equal(await r.reserve("pod-a"), "10.240.0.5");
    const during: Promise<string | number>[] = [];
    const result = await provision({
      ...r.options,
      count: 3,
      progress(line) {
        if (!line.startsWith("Updating NIC")) return;
        // ADDs while ARM runs the PUT's long-running operation.
        during.push(outcome(r.reserve("pod-b")), outcome(r.reserve("pod-c")));
      },
    });
    assert.deepEqual(result.removed, ["ipconfig4", "ipconfig5", "ipconfig6"]);
    const after = [outcome(r.reserve("pod-d")), outcome(r.reserve("pod-e"))];
    // pod-b: b, c, d and e: 100 (no free address), none of .7, .8 or .9.
    assert.deepEqual(await Promise.all([...during, ...after]), [
      "10.240.0.6",
      100,
      100,
      100,
    ]);
    assert.deepEqual([...r.onNic()].sort(), [
      "10.240.0.4",
      "10.240.0.5",
      "10.240.0.6",
    ]);
    const ipam = await r.ipam();
    assert.deepEqual(ipam.free, []);
    for (const [pod, ip] of ipam.held) {
      assert.ok(r.onNic().has(ip), `${pod} holds ${ip}, which the NIC has`);
    }
  },
});

/** An engine that runs `race` right before its first `syncNic`. */
class RacingEngine extends IpamEngine {
  race: (() => Promise<unknown>) | undefined;
  override async syncNic(
    nic: { macAddress: string; addresses: readonly string[] },
  ): ReturnType<IpamEngine["syncNic"]> {
    const race = this.race;
    this.race = undefined;
    await race?.();
    return await super.syncNic(nic);
  }
}

Deno.test({
  name:
    "provision() refuses and gives the rest back when a pod takes an address between the check and the withdrawal",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(6);
    await r.reserve("pod-a");
    const engine = new RacingEngine({ stateDir: r.dir });
    engine.race = () => r.reserve("racer", "10.240.0.9");
    await assert.rejects(provision({ ...r.options, count: 3, engine }), {
      name: "Error",
      message:
        /^Cannot scale NIC "vm0-nic" down to 3: ipconfig6 \(10\.240\.0\.9\) in use per .*azure-vnet-ipam\.json; release those pods first/,
    });
    assert.equal(r.onNic().size, 6, "the NIC is unchanged");
    const ipam = await r.ipam();
    assert.deepEqual(ipam.free, ["10.240.0.6", "10.240.0.7", "10.240.0.8"]);
    assert.equal(ipam.held.get("racer"), "10.240.0.9");
  },
});

Deno.test({
  name:
    "provision() gives the withdrawn addresses back when the NIC update fails and the NIC still has them",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(6);
    await r.reserve("pod-a");
    await assert.rejects(
      provision({
        ...r.options,
        count: 3,
        progress(line) {
          // ARM refuses the PUT (409 is not retried by the SDK).
          if (line.startsWith("Updating NIC")) {
            r.emu.setFault("arm", { errorCount: 1, errorStatus: 409 });
          }
        },
      }),
      { name: "RestError", message: /injected/ },
    );
    assert.equal(r.onNic().size, 6, "the NIC is unchanged");
    assert.deepEqual((await r.ipam()).free, [
      "10.240.0.6",
      "10.240.0.7",
      "10.240.0.8",
      "10.240.0.9",
    ]);
  },
});

Deno.test({
  name:
    "provision() keeps the removed addresses out of the IPAM when the NIC update was applied but the call failed",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(6);
    await r.reserve("pod-a");
    const lines: string[] = [];
    await assert.rejects(
      provision({
        ...r.options,
        count: 3,
        progress: (line) => lines.push(line),
        async openNic(o) {
          const nic = await openNic(o);
          return {
            ref: nic.ref,
            get: () => nic.get(),
            async update(current, change) {
              await nic.update(current, change);
              throw new Error("Connection lost while polling");
            },
          };
        },
      }),
      { name: "Error", message: "Connection lost while polling" },
    );
    assert.deepEqual([...r.onNic()].sort(), [
      "10.240.0.4",
      "10.240.0.5",
      "10.240.0.6",
    ]);
    assert.deepEqual((await r.ipam()).free, ["10.240.0.6"]);
    assert.deepEqual(
      await Promise.all([
        outcome(r.reserve("pod-b")),
        outcome(r.reserve("pod-c")),
      ]),
      ["10.240.0.6", 100],
    );
    assert.ok(
      lines.includes(
        "Withdrawing 10.240.0.7, 10.240.0.8, 10.240.0.9 from the IPAM (" +
          `${r.dir}/azure-vnet-ipam.json)`,
      ),
      lines.join("\n"),
    );
  },
});

Deno.test({
  name:
    "provision() scale-up makes the new addresses free in the IPAM at once, before its next refresh",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(2);
    assert.equal(await r.reserve("pod-a"), "10.240.0.5");
    await assert.rejects(r.reserve("pod-b"), { name: "CniError", code: 100 });
    await provision({ ...r.options, count: 4 });
    assert.deepEqual((await r.ipam()).free, ["10.240.0.6", "10.240.0.7"]);
    assert.equal(await r.reserve("pod-b"), "10.240.0.6");
  },
});

Deno.test({
  name:
    "provision() refuses a scale-down of a NIC without a MAC address unless --force",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(4);
    await r.reserve("pod-a");
    async function macless(o: OpenNicOptions): Promise<ArmNic> {
      const nic = await openNic(o);
      return {
        ref: nic.ref,
        async get() {
          const { macAddress: _mac, ...model } = await nic.get();
          return model;
        },
        update: (current, change) => nic.update(current, change),
      };
    }
    await assert.rejects(
      provision({ ...r.options, count: 2, openNic: macless }),
      {
        name: "Error",
        message:
          /^Cannot scale NIC "vm0-nic" down to 2: ARM reports no MAC address for it/,
      },
    );
    assert.equal(r.onNic().size, 4);
    const lines: string[] = [];
    await provision({
      ...r.options,
      count: 2,
      force: true,
      openNic: macless,
      progress: (line) => lines.push(line),
    });
    assert.equal(r.onNic().size, 2);
    assert.ok(
      lines.some((l) => /^Warning: ARM reports no MAC address/.test(l)),
      lines.join("\n"),
    );
  },
});

Deno.test({
  name:
    "provision() reads the NIC again and plans again when ARM refuses a stale update (another writer, 412)",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(6);
    const lines: string[] = [];
    let theirs: string | undefined;
    const result = await provision({
      ...r.options,
      count: 8,
      progress: (line) => lines.push(line),
      async openNic(o) {
        const nic = await openNic(o);
        const other = await openNic(o);
        return {
          ref: nic.ref,
          get: () => nic.get(),
          async update(current, change) {
            if (theirs === undefined) {
              // The warm pool adds ipconfig7 between our read and our PUT.
              const grown = await other.update(await other.get(), {
                add: ["ipconfig7"],
                addIpv6: [],
                remove: [],
              });
              theirs = grown.ipConfigurations?.find((c) =>
                c.name === "ipconfig7"
              )?.privateIPAddress;
            }
            return await nic.update(current, change);
          },
        };
      },
    });
    assert.equal(r.onNic().size, 8, [...r.onNic()].join(", "));
    assert.deepEqual(
      result.ipConfigurations.map((c) => c.name).sort(),
      [
        "ipconfig1",
        "ipconfig2",
        "ipconfig3",
        "ipconfig4",
        "ipconfig5",
        "ipconfig6",
        "ipconfig7",
        "ipconfig8",
      ],
    );
    // The other writer's ipconfig kept its address: nothing of theirs lost.
    assert.ok(theirs !== undefined);
    assert.equal(
      result.ipConfigurations.find((c) => c.name === "ipconfig7")
        ?.privateIPAddress,
      theirs,
    );
    assert.ok(
      lines.some((l) => /changed since it was read \(ARM refused/.test(l)),
      lines.join("\n"),
    );
  },
});

Deno.test({
  name:
    "provision() keeps an address it removes out of the IPAM even where no pool had it yet",
  ...SDK_TEST,
  async fn() {
    await using r = await ipamRig(6);
    assert.equal(await r.reserve("pod-a"), "10.240.0.5");
    assert.equal(await r.reserve("pod-b"), "10.240.0.6");
    // 10.240.0.9 is on the NIC but not in the IPAM's pool yet (added by
    // hand since the last refresh), and a refresh is due.
    const path = `${r.dir}/${IPAM_STATE_FILE}`;
    const state = JSON.parse(await Deno.readTextFile(path));
    for (const pool of Object.values(state.pools)) {
      delete (pool as { addresses: Record<string, unknown> }).addresses[
        "10.240.0.9"
      ];
    }
    state.lastRefresh = 0;
    await Deno.writeTextFile(path, JSON.stringify(state));
    let racer: string | number | undefined;
    await provision({
      ...r.options,
      count: 3,
      async openNic(o) {
        const nic = await openNic(o);
        return {
          ref: nic.ref,
          get: () => nic.get(),
          async update(current, change) {
            // An ADD after the withdrawal, before the PUT: its refresh
            // finds the wireserver still listing 10.240.0.9.
            racer = await outcome(r.reserve("racer"));
            return await nic.update(current, change);
          },
        };
      },
    });
    assert.equal(racer, 100);
    assert.deepEqual([...r.onNic()].sort(), [
      "10.240.0.4",
      "10.240.0.5",
      "10.240.0.6",
    ]);
  },
});
