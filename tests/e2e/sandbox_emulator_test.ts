/**
 * The fabric with the emulator inside it: each node gets its own wireserver
 * and IMDS view at the documented addresses, and the fabric's rules follow
 * the emulator's ARM state. With an IPv6 subnet (#15), the real clients in a
 * node (the NIC tool over ARM, the wireserver and IMDS clients, the IPAM)
 * read the IPv6 ipconfigs.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { run } from "../_support/netns.ts";
import {
  createFabric,
  createNode,
  IMDS_IP,
  listSandboxNetns,
  SandboxNames,
  subnetLayout,
} from "../../tools/sandbox/fabric.ts";
import {
  type EmulatorHandle,
  processAlive,
  readArmNics,
  type SeededVm,
  seedEmulatorState,
  startEmulator,
  stopEmulator,
} from "../../tools/sandbox/_emulator.ts";
import { execIn, pingFrom } from "../../tools/sandbox/_run.ts";
import { REPO_ROOT, syncFabric } from "../../tools/sandbox/sandbox.ts";
import type { SandboxRecord } from "../../tools/sandbox/record.ts";
import type { EmulatorState } from "../../tools/sandbox/emulator/state.ts";
import { AZURE_VNET_IPAM_SRC, runCni } from "../../tools/testbed/mod.ts";

const WIRESERVER =
  "http://168.63.129.16/machine/plugins?comp=nmagent&type=getinterfaceinfov1";
const IPV6_SUBNET = "fd00:10:240::/64";

/** A fabric, nodes and the emulator in it, and how to remove them. */
interface EmulatedVnet extends AsyncDisposable {
  readonly names: SandboxNames;
  readonly dir: string;
  readonly stateFile: string;
  readonly vms: SeededVm[];
  readonly emu: EmulatorHandle;
  readonly rec: SandboxRecord;
}

/**
 * Builds a fabric with `nodes` nodes, seeds the emulator (dual-stack with
 * `ipv6Subnet`), starts it in the fabric and syncs the fabric's rules.
 * Disposing stops the emulator, deletes every netns and the directory, and
 * checks that none is left.
 */
async function emulatedVnet(
  options: { nodes: number; ipv6Subnet?: string },
): Promise<EmulatedVnet> {
  const names = new SandboxNames(`vsb-${crypto.randomUUID().slice(0, 5)}`);
  const subnet = subnetLayout("10.240.0.0/16");
  const dir = await Deno.makeTempDir({ prefix: "vsb-emu-" });
  const stateFile = `${dir}/emulator.json`;
  let pid = -1;
  async function dispose() {
    if (pid > 0) assert.ok(await stopEmulator(pid));
    for (const ns of await listSandboxNetns(names.prefix)) {
      await run("ip", ["netns", "del", ns]);
    }
    await Deno.remove(dir, { recursive: true });
    assert.ok(!processAlive(pid));
    assert.deepEqual(await listSandboxNetns(names.prefix), []);
  }
  try {
    await createFabric(names, subnet);
    const vms = await seedEmulatorState(stateFile, {
      subnet: subnet.cidr,
      ipv6Subnet: options.ipv6Subnet,
      vmNames: Array.from({ length: options.nodes }, (_, i) => names.node(i)),
    });
    for (const [i, vm] of vms.entries()) {
      await createNode(names, i, { nic: vm, subnet });
    }
    const emu = await startEmulator(names.fabric, { stateFile, dir });
    pid = emu.pid;
    const rec: SandboxRecord = {
      version: 1,
      prefix: names.prefix,
      dir,
      subnet: subnet.cidr,
      netns: [],
      emulator: emu,
      binDir: "",
      confDir: "",
      pods: [],
      nodes: vms.map((vm, i) => ({
        index: i,
        netns: names.node(i),
        port: names.port(i),
        nicName: vm.nicName,
        mac: vm.mac,
        primaryIp: vm.primaryIp,
        stateDir: "",
        logDir: "",
      })),
    };
    await syncFabric(rec);
    return {
      names,
      dir,
      stateFile,
      vms,
      emu,
      rec,
      [Symbol.asyncDispose]: dispose,
    };
  } catch (err) {
    await dispose();
    throw err;
  }
}

async function inNs(ns: string, argv: string[]): Promise<string> {
  return await run("ip", ["netns", "exec", ns, ...argv]);
}

Deno.test("sandbox emulator serves each node its view and drives the fabric", async (t) => {
  requireRoot();
  await using vnet = await emulatedVnet({ nodes: 2 });
  const { names, stateFile, vms, emu, rec } = vnet;
  const [vm0, vm1] = vms;
  assert.ok(vm0 !== undefined && vm1 !== undefined);

  await t.step(
    "the wireserver answers each node with its own NIC",
    async () => {
      const x0 = await inNs(names.node(0), ["curl", "-sf", WIRESERVER]);
      const x1 = await inNs(names.node(1), ["curl", "-sf", WIRESERVER]);
      const mac = (m: string) => m.replaceAll(":", "").toUpperCase();
      assert.match(x0, new RegExp(`MacAddress="${mac(vm0.mac)}"`));
      assert.doesNotMatch(x0, new RegExp(mac(vm1.mac)));
      assert.match(
        x1,
        new RegExp(`Address="${vm1.primaryIp}" IsPrimary="true"`),
      );
    },
  );

  await t.step(
    "IMDS answers at 169.254.169.254 and ARM over TLS at 168.63.129.16",
    async () => {
      const imds = await inNs(names.node(0), [
        "curl",
        "-sf",
        "-H",
        "Metadata: true",
        "http://169.254.169.254/metadata/instance/network?api-version=2021-02-01",
      ]);
      assert.match(imds, new RegExp(vm0.primaryIp.replaceAll(".", "\\.")));
      const tls = await new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          names.node(0),
          "curl",
          "-s",
          "-o",
          "/dev/null",
          "--cacert",
          emu.caFile,
          emu.armEndpoint,
        ],
      }).output();
      assert.ok(tls.success, "TLS handshake with the sandbox CA");
    },
  );

  await t.step(
    "an ipconfig added in ARM state becomes usable after a sync",
    async () => {
      const extra = "10.240.0.77";
      await run("ip", [
        "-n",
        names.node(0),
        "addr",
        "add",
        `${extra}/16`,
        "dev",
        "eth0",
      ]);
      assert.ok(
        !await pingFrom(names.node(0), vm1.primaryIp, { from: extra }),
      );
      const state = JSON.parse(
        await Deno.readTextFile(stateFile),
      ) as EmulatorState;
      state.vms[0]?.nic.ipConfigurations.push({
        name: "ipconfig9",
        privateIPAddress: extra,
        primary: false,
        allocation: "Static",
      });
      await Deno.writeTextFile(stateFile, JSON.stringify(state));
      const view = await syncFabric(rec);
      assert.deepEqual(view.ports[0]?.ips, [vm0.primaryIp, extra]);
      assert.ok(
        await pingFrom(names.node(0), vm1.primaryIp, { from: extra }),
      );
      const x0 = await inNs(names.node(0), ["curl", "-sf", WIRESERVER]);
      assert.match(x0, /Address="10\.240\.0\.77" IsPrimary="false"/);
    },
  );
});

/** Runs `deno run -A` of a script inside a netns, with the repo's config. */
async function denoIn(netns: string, args: string[]): Promise<string> {
  const res = await execIn(netns, [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    "--config",
    `${REPO_ROOT}/deno.json`,
    ...args,
  ]);
  return res.stdout;
}

Deno.test("sandbox emulator serves IPv6 ipconfigs to the real clients in a node", async (t) => {
  requireRoot();
  await using vnet = await emulatedVnet({ nodes: 2, ipv6Subnet: IPV6_SUBNET });
  const { names, dir, stateFile, vms, emu } = vnet;
  const node = names.node(0);
  const [vm0, vm1] = vms;
  assert.ok(vm0 !== undefined && vm1 !== undefined);
  assert.deepEqual([vm0.primaryIpv6, vm1.primaryIpv6], [
    "fd00:10:240::4",
    "fd00:10:240::5",
  ]);

  await t.step(
    "the NIC tool in the node adds IPv6 ipconfigs through ARM (SDK, TLS)",
    async () => {
      const out = await denoIn(node, [
        `${REPO_ROOT}/tools/nic/main.ts`,
        "provision",
        "--count",
        "3",
        "--ipv6-count",
        "3",
        "--imds-url",
        `http://${IMDS_IP}`,
        "--arm-endpoint",
        emu.armEndpoint,
        "--ca-file",
        emu.caFile,
        "--state-dir",
        dir,
      ]);
      assert.deepEqual(out.trim().split("\n"), [
        "ipconfig1\t10.240.0.4\tprimary",
        "ipconfig2\t10.240.0.6",
        "ipconfig3\t10.240.0.7",
        "ipv6config1\tfd00:10:240::4",
        "ipv6config2\tfd00:10:240::6",
        "ipv6config3\tfd00:10:240::7",
      ]);
      const nics = await readArmNics(stateFile);
      assert.deepEqual(nics.map((n) => [n.ips, n.ipv6s]), [
        [
          ["10.240.0.4", "10.240.0.6", "10.240.0.7"],
          ["fd00:10:240::4", "fd00:10:240::6", "fd00:10:240::7"],
        ],
        [["10.240.0.5"], ["fd00:10:240::5"]],
      ]);
    },
  );

  await t.step(
    "the wireserver and IMDS clients in the node read both subnets",
    async () => {
      const probe = `${dir}/probe.ts`;
      await Deno.writeTextFile(
        probe,
        `import { getImdsInterfaces, getInterfaceInfo } from "${REPO_ROOT}/azure/mod.ts";
const doc = { wire: await getInterfaceInfo(), imds: await getImdsInterfaces() };
Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(doc)));
`,
      );
      const doc = JSON.parse(await denoIn(node, [probe]));
      const mac = vm0.mac.replaceAll(":", "");
      const want = [{
        macAddress: mac,
        isPrimary: true,
        subnets: [{
          prefix: "10.240.0.0/16",
          addresses: ["10.240.0.4", "10.240.0.6", "10.240.0.7"].map((
            address,
            i,
          ) => ({ address, isPrimary: i === 0 })),
        }, {
          prefix: IPV6_SUBNET,
          addresses: ["fd00:10:240::4", "fd00:10:240::6", "fd00:10:240::7"]
            .map((address, i) => ({ address, isPrimary: i === 0 })),
        }],
      }];
      assert.deepEqual(doc, { wire: want, imds: want });
    },
  );

  for (const environment of ["azure", "imds"]) {
    await t.step(
      `the IPAM (environment ${environment}) reserves a dual-stack pair`,
      async () => {
        const stateDir = `${dir}/ipam-${environment}`;
        await Deno.mkdir(stateDir);
        const conf = {
          cniVersion: "1.0.0",
          name: "azure",
          type: "azure-vnet-ipam",
          ipam: { type: "azure-vnet-ipam", environment },
        };
        const cni = (command: string) =>
          runCni({
            argv: AZURE_VNET_IPAM_SRC,
            command,
            conf,
            netns: node,
            baseEnv: {
              CNI_NETNS: "/proc/1/ns/net",
              CNI_PATH: "/opt/cni/bin",
              PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
              HOME: Deno.env.get("HOME") ?? "/root",
            },
            env: {
              CNI_CONTAINERID: `cnitest-${environment}`,
              CNI_IFNAME: "eth0",
              AZURE_VNET_STATE_DIR: stateDir,
              AZURE_VNET_LOG_DIR: stateDir,
            },
          });
        const add = await cni("ADD");
        assert.equal(add.code, 0, add.stdout);
        const ips = (add.json?.ips ?? []) as {
          address: string;
          gateway: string;
        }[];
        assert.deepEqual(ips.map((ip) => [ip.address, ip.gateway]), [
          ["10.240.0.6/16", "10.240.0.1"],
          ["fd00:10:240::6/64", "fd00:10:240::1"],
        ]);
        const del = await cni("DEL");
        assert.equal(del.code, 0, del.stdout);
      },
    );
  }
});
