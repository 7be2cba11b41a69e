import assert from "node:assert/strict";
import { ipConfigUpdateBody, type NicModel } from "./nic.ts";

const NIC: NicModel = {
  name: "nic0",
  ipConfigurations: [
    { name: "ipconfig1", primary: true, subnet: { id: "s" } },
    {
      name: "ipv6config1",
      primary: false,
      privateIPAddress: "fd00::4",
      privateIPAddressVersion: "IPv6",
      subnet: { id: "s" },
    },
    { name: "ipconfig3", primary: false, subnet: { id: "s" } },
  ],
};

Deno.test("ipConfigUpdateBody() keeps IPv4 sorted and IPv6 after it, in order", () => {
  const body = ipConfigUpdateBody(NIC, {
    add: ["ipconfig2"],
    addIpv6: ["ipv6config2"],
    remove: [],
  });
  assert.deepEqual(
    body.ipConfigurations?.map((c) => [c.name, c.privateIPAddressVersion]),
    [
      ["ipconfig1", undefined],
      ["ipconfig2", "IPv4"],
      ["ipconfig3", undefined],
      ["ipv6config1", "IPv6"],
      ["ipv6config2", "IPv6"],
    ],
  );
  assert.deepEqual(body.ipConfigurations?.[4], {
    name: "ipv6config2",
    privateIPAllocationMethod: "Dynamic",
    privateIPAddressVersion: "IPv6",
    subnet: { id: "s" },
    primary: false,
  });
});

Deno.test("ipConfigUpdateBody() removes IPv6 ipconfigs by name and adds none by default", () => {
  const body = ipConfigUpdateBody(NIC, { add: [], remove: ["ipv6config1"] });
  assert.deepEqual(body.ipConfigurations?.map((c) => c.name), [
    "ipconfig1",
    "ipconfig3",
  ]);
});
