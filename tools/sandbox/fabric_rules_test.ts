import assert from "node:assert/strict";
import { fabricNeighbours, fabricRules } from "./fabric_rules.ts";

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
