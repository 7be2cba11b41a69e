/**
 * The fabric with the emulator inside it: each node gets its own wireserver
 * and IMDS view at the documented addresses, and the fabric's rules follow
 * the emulator's ARM state.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { run } from "../_support/netns.ts";
import {
  createFabric,
  createNode,
  listSandboxNetns,
  SandboxNames,
  subnetLayout,
} from "../../tools/sandbox/fabric.ts";
import {
  processAlive,
  seedEmulatorState,
  startEmulator,
  stopEmulator,
} from "../../tools/sandbox/_emulator.ts";
import { syncFabric } from "../../tools/sandbox/sandbox.ts";
import type { SandboxRecord } from "../../tools/sandbox/record.ts";
import type { EmulatorState } from "../../tools/sandbox/emulator/state.ts";

const WIRESERVER =
  "http://168.63.129.16/machine/plugins?comp=nmagent&type=getinterfaceinfov1";

async function inNs(ns: string, argv: string[]): Promise<string> {
  return await run("ip", ["netns", "exec", ns, ...argv]);
}

async function ping(ns: string, target: string, from: string) {
  const out = await new Deno.Command("ip", {
    args: ["netns", "exec", ns, "ping", "-c1", "-W1", "-q", "-I", from, target],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

Deno.test("sandbox emulator serves each node its view and drives the fabric", async (t) => {
  requireRoot();
  const names = new SandboxNames(`vsb-${crypto.randomUUID().slice(0, 5)}`);
  const subnet = subnetLayout("10.240.0.0/16");
  const dir = await Deno.makeTempDir({ prefix: "vsb-emu-" });
  const stateFile = `${dir}/emulator.json`;
  let pid = -1;
  try {
    await createFabric(names, subnet);
    const vms = await seedEmulatorState(stateFile, {
      subnet: subnet.cidr,
      vmNames: [names.node(0), names.node(1)],
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
        assert.ok(!await ping(names.node(0), vm1.primaryIp, extra));
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
        assert.ok(await ping(names.node(0), vm1.primaryIp, extra));
        const x0 = await inNs(names.node(0), ["curl", "-sf", WIRESERVER]);
        assert.match(x0, /Address="10\.240\.0\.77" IsPrimary="false"/);
      },
    );
  } finally {
    if (pid > 0) assert.ok(await stopEmulator(pid));
    for (const ns of await listSandboxNetns(names.prefix)) {
      await run("ip", ["netns", "del", ns]);
    }
    await Deno.remove(dir, { recursive: true });
  }
  assert.ok(!processAlive(pid));
  assert.deepEqual(await listSandboxNetns(names.prefix), []);
});
