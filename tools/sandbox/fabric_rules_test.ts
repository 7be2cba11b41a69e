import assert from "node:assert/strict";
import {
  fabricNeighbours,
  fabricProxies,
  fabricRules,
  linkLocalOf,
} from "./fabric_rules.ts";

const VIEW = {
  subnet: "10.240.0.0/16",
  ports: [
    { port: "p0", mac: "000D3A000001", ips: ["10.240.0.4", "10.240.0.6"] },
    { port: "p1", mac: "00-0D-3A-00-00-02", ips: ["10.240.0.5"] },
  ],
};

Deno.test("fabricRules() renders Azure's rules for every port and ipconfig", () => {
  const lines = fabricRules(VIEW).split("\n");
  assert.ok(lines.includes(
    "-A PREROUTING -p ARP --arp-op Request --arp-ip-dst 10.240.0.0/16 -j arpreply --arpreply-mac 12:34:56:78:9a:bc --arpreply-target DROP",
  ));
  for (
    const [ip, mac] of [
      ["10.240.0.4", "00:0d:3a:00:00:01"],
      ["10.240.0.6", "00:0d:3a:00:00:01"],
      ["10.240.0.5", "00:0d:3a:00:00:02"],
    ]
  ) {
    assert.ok(lines.includes(
      `-A PREROUTING -p IPv4 --ip-dst ${ip} -j dnat --to-dst ${mac} --dnat-target ACCEPT`,
    ));
  }
  assert.ok(
    lines.includes("-A PREROUTING -i p1 -s ! 00:0d:3a:00:00:02 -j DROP"),
  );
  assert.ok(lines.includes(":p0-src RETURN"));
  assert.ok(lines.includes("-A FORWARD -i p0 -j p0-src"));
  assert.ok(lines.includes("-A INPUT -i p0 -j p0-src"));
  assert.ok(
    lines.includes("-A p0-src -p ARP --arp-ip-src 10.240.0.6 -j RETURN"),
  );
  // The port chain ends in DROP, after its allow list.
  const p0 = lines.filter((l) => l.startsWith("-A p0-src"));
  assert.equal(p0[0], "-A p0-src -s ! 00:0d:3a:00:00:01 -j DROP");
  assert.equal(p0.at(-1), "-A p0-src -j DROP");
  assert.equal(p0.length, 1 + 2 * 2 + 1);
  // Tables come nat first, then filter, each with its header.
  assert.equal(lines[0], "*nat");
  assert.ok(lines.indexOf("*filter") > 0);
});

Deno.test("fabricNeighbours() maps every ipconfig to its NIC MAC", () => {
  assert.deepEqual(fabricNeighbours(VIEW), [
    { ip: "10.240.0.4", mac: "00:0d:3a:00:00:01" },
    { ip: "10.240.0.6", mac: "00:0d:3a:00:00:01" },
    { ip: "10.240.0.5", mac: "00:0d:3a:00:00:02" },
  ]);
});

const VIEW6 = {
  subnet: "10.240.0.0/16",
  ports: [
    {
      port: "p0",
      mac: "00:0d:3a:00:00:01",
      ips: ["10.240.0.4"],
      ipv6s: ["fd00::4", "fd00::6"],
    },
    {
      port: "p1",
      mac: "00:0d:3a:00:00:02",
      ips: ["10.240.0.5"],
      ipv6s: ["fd00::5"],
    },
  ],
};

Deno.test("fabricRules() with IPv6 ipconfigs: solicitations to the fabric, delivery by IPv6 destination, only the NIC's IPv6 sources", () => {
  const lines = fabricRules(VIEW6).split("\n");
  const nat = lines.filter((l) => l.startsWith("-A PREROUTING"));
  const ns = nat.indexOf(
    "-A PREROUTING -p IPv6 --ip6-proto ipv6-icmp --ip6-icmp-type neighbour-solicitation -j ACCEPT",
  );
  const dnat6 = nat.indexOf(
    "-A PREROUTING -p IPv6 --ip6-dst fd00::6 -j dnat --to-dst 00:0d:3a:00:00:01 --dnat-target ACCEPT",
  );
  // Solicitations (unicast probes too) reach the fabric before delivery;
  // spoofed source MACs are dropped before both; multicast after.
  assert.ok(
    nat.indexOf("-A PREROUTING -i p0 -s ! 00:0d:3a:00:00:01 -j DROP") < ns,
  );
  assert.ok(ns >= 0 && ns < dnat6, nat.join("\n"));
  assert.ok(dnat6 < nat.indexOf("-A PREROUTING -d Multicast -j DROP"));
  assert.ok(nat.includes(
    "-A PREROUTING -p IPv6 --ip6-dst fd00::5 -j dnat --to-dst 00:0d:3a:00:00:02 --dnat-target ACCEPT",
  ));
  const p0 = lines.filter((l) => l.startsWith("-A p0-src"));
  assert.deepEqual(p0.filter((l) => l.includes("IPv6")), [
    "-A p0-src -p IPv6 --ip6-src fd00::4 -j RETURN",
    "-A p0-src -p IPv6 --ip6-src fd00::6 -j RETURN",
    "-A p0-src -p IPv6 --ip6-src fe80::20d:3aff:fe00:1 -j RETURN",
  ]);
  assert.equal(p0.at(-1), "-A p0-src -j DROP");
});

Deno.test("fabricRules() without IPv6 ipconfigs writes no IPv6 rule", () => {
  assert.doesNotMatch(fabricRules(VIEW), /IPv6/);
});

Deno.test("fabricNeighbours() and fabricProxies() cover the IPv6 ipconfigs", () => {
  assert.deepEqual(fabricNeighbours(VIEW6).map((n) => n.ip), [
    "10.240.0.4",
    "fd00::4",
    "fd00::6",
    "10.240.0.5",
    "fd00::5",
  ]);
  assert.deepEqual(fabricProxies(VIEW6), ["fd00::4", "fd00::6", "fd00::5"]);
  assert.deepEqual(fabricProxies(VIEW), []);
});

Deno.test("linkLocalOf() derives the EUI-64 link-local address from a MAC", () => {
  assert.equal(linkLocalOf("000D3A5C44A1"), "fe80::20d:3aff:fe5c:44a1");
  assert.equal(linkLocalOf("02:00:00:00:00:01"), "fe80::ff:fe00:1");
});
