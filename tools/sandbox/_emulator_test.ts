import assert from "node:assert/strict";
import { readArmNics, seedEmulatorState } from "./_emulator.ts";

Deno.test("seedEmulatorState() seeds IPv4-only NICs without ipconfigs of IPv6", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/state.json`;
    const vms = await seedEmulatorState(file, {
      subnet: "10.240.0.0/16",
      vmNames: ["n0", "n1"],
    });
    assert.deepEqual(vms.map((v) => [v.name, v.primaryIp]), [
      ["n0", "10.240.0.4"],
      ["n1", "10.240.0.5"],
    ]);
    assert.ok(vms.every((v) => !("primaryIpv6" in v)));
    const text = await Deno.readTextFile(file);
    assert.doesNotMatch(text, /IPv6|ipv6/);
    const nics = await readArmNics(file);
    assert.deepEqual(nics.map((n) => [n.name, n.ips, n.ipv6s]), [
      ["n0-nic", ["10.240.0.4"], []],
      ["n1-nic", ["10.240.0.5"], []],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("seedEmulatorState() gives every NIC one IPv6 ipconfig with ipv6Subnet", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/state.json`;
    const vms = await seedEmulatorState(file, {
      subnet: "10.240.0.0/16",
      ipv6Subnet: "fd00:10:240:0::/64",
      vmNames: ["n0", "n1"],
    });
    await t.step("the seeded VMs carry their IPv6 address", () => {
      assert.deepEqual(
        vms.map((v) => [v.name, v.mac.length, v.primaryIp, v.primaryIpv6]),
        [
          ["n0", 17, "10.240.0.4", "fd00:10:240::4"],
          ["n1", 17, "10.240.0.5", "fd00:10:240::5"],
        ],
      );
    });
    await t.step("readArmNics() keeps ips IPv4 and lists ipv6s", async () => {
      const nics = await readArmNics(file);
      assert.deepEqual(nics.map((n) => [n.ips, n.ipv6s]), [
        [["10.240.0.4"], ["fd00:10:240::4"]],
        [["10.240.0.5"], ["fd00:10:240::5"]],
      ]);
    });
    await t.step(
      "the state file holds ARM's version and the prefix",
      async () => {
        const doc = JSON.parse(await Deno.readTextFile(file));
        assert.deepEqual(doc.vms[0].nic.subnet.ipv6Prefix, "fd00:10:240::/64");
        assert.deepEqual(doc.vms[0].nic.ipConfigurations[1], {
          name: "ipv6config1",
          privateIPAddress: "fd00:10:240::4",
          privateIPAddressVersion: "IPv6",
          primary: false,
          allocation: "Dynamic",
        });
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("seedEmulatorState() refuses an ipv6Subnet that is no IPv6 /64../124", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [ipv6Subnet, err] of [
        ["10.1.0.0/16", { name: "SyntaxError", message: /IPv6 subnet/ }],
        ["fd00::/48", { name: "RangeError", message: /64\.\.124/ }],
      ] as const
    ) {
      await assert.rejects(
        seedEmulatorState(`${dir}/s.json`, {
          subnet: "10.240.0.0/16",
          ipv6Subnet,
          vmNames: ["n0"],
        }),
        err,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
