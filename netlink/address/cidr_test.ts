import assert from "node:assert/strict";
import {
  broadcast,
  contains,
  host,
  inSubnet,
  network,
  networkOf,
  parseCidr,
} from "./cidr.ts";

Deno.test("parseCidr() parses IPv4 and IPv6 CIDRs", async (t) => {
  const cases: [string, { ip: string; prefix: number; family: 4 | 6 }][] = [
    ["10.240.0.4/16", { ip: "10.240.0.4", prefix: 16, family: 4 }],
    ["10.0.0.1", { ip: "10.0.0.1", prefix: 32, family: 4 }],
    ["0.0.0.0/0", { ip: "0.0.0.0", prefix: 0, family: 4 }],
    ["FD00:0:0::0001/64", { ip: "fd00::1", prefix: 64, family: 6 }],
    ["::/0", { ip: "::", prefix: 0, family: 6 }],
    ["2001:db8:0:0:1:0:0:1/128", {
      ip: "2001:db8::1:0:0:1",
      prefix: 128,
      family: 6,
    }],
    ["::ffff:10.1.2.3", { ip: "::ffff:10.1.2.3", prefix: 128, family: 6 }],
  ];
  for (const [text, want] of cases) {
    await t.step(text, () => assert.deepEqual(parseCidr(text), want));
  }
});

Deno.test("parseCidr() throws SyntaxError or RangeError when invalid", async (t) => {
  const syntax = [
    "",
    "10.0.0",
    "10.0.0.256/8",
    "10.0.0.01/8",
    "10.0.0.1/",
    "10.0.0.1/a",
    "1::2::3",
    "1:2:3:4:5:6:7:8:9",
    "fd00::g",
    " 10.0.0.1",
  ];
  for (const text of syntax) {
    await t.step(`"${text}"`, () =>
      assert.throws(() => parseCidr(text), {
        name: "SyntaxError",
        message: /Cannot parse CIDR/,
      }));
  }
  await t.step("prefix too long", () => {
    assert.throws(() => parseCidr("10.0.0.0/33"), {
      name: "RangeError",
      message: /prefix exceeds 32/,
    });
    assert.throws(() => parseCidr("fd00::/129"), {
      name: "RangeError",
      message: /prefix exceeds 128/,
    });
  });
});

Deno.test("network(), broadcast() and host() compute CIDR addresses", () => {
  assert.equal(network("10.240.3.7/16"), "10.240.0.0");
  assert.equal(broadcast("10.240.3.7/16"), "10.240.255.255");
  assert.equal(host("10.240.0.0/16", 1), "10.240.0.1");
  assert.equal(host("10.240.0.0/16", 65535), "10.240.255.255");
  assert.equal(network("10.1.2.3/32"), "10.1.2.3");
  assert.equal(network("0.0.0.0/0"), "0.0.0.0");
  assert.equal(broadcast("1.2.3.4/0"), "255.255.255.255");
  assert.equal(network("fd00:1:2:3::99/64"), "fd00:1:2:3::");
  assert.equal(broadcast("fd00::/120"), "fd00::ff");
  assert.equal(host("fd00::/64", 5), "fd00::5");
  assert.throws(() => host("10.0.0.0/24", 256), {
    name: "RangeError",
    message: /out of range/,
  });
  assert.throws(() => host("10.0.0.0/24", -1), {
    name: "RangeError",
    message: /out of range/,
  });
});

Deno.test("contains() tells whether an address is inside a CIDR", () => {
  assert.ok(contains("10.240.0.0/16", "10.240.9.9"));
  assert.ok(!(contains("10.240.0.0/16", "10.241.0.1")));
  assert.ok(contains("0.0.0.0/0", "1.2.3.4"));
  assert.ok(contains("10.0.0.5/32", "10.0.0.5"));
  assert.ok(!(contains("10.0.0.0/8", "fd00::1")));
  assert.ok(contains("fd00::/8", "fdff::1"));
  assert.ok(!(contains("fd00::/16", "fd01::1")));
});

Deno.test("networkOf() gives the network as CIDR text", () => {
  assert.equal(networkOf("10.0.0.5/24"), "10.0.0.0/24");
  assert.equal(networkOf("10.240.3.7/16"), "10.240.0.0/16");
  assert.equal(networkOf("10.0.0.5"), "10.0.0.5/32");
  assert.equal(networkOf("fd00:1:2:3::99/64"), "fd00:1:2:3::/64");
  assert.throws(() => networkOf("10.0.0/24"), {
    name: "SyntaxError",
    message: /Cannot parse CIDR/,
  });
});

Deno.test("inSubnet() tells IPv4 membership and never throws", () => {
  assert.ok(inSubnet("10.0.0.5", "10.0.0.0/24"));
  assert.ok(inSubnet("10.0.0.5/24", "10.0.0.0/24"));
  assert.ok(inSubnet("10.0.0.5", "10.0.0.77/24"));
  assert.ok(!inSubnet("10.0.1.5", "10.0.0.0/24"));
  assert.ok(!inSubnet("fd00::5", "fd00::/64"));
  assert.ok(!inSubnet("10.0.0.5", "fd00::/64"));
  assert.ok(!inSubnet("junk", "10.0.0.0/24"));
  assert.ok(!inSubnet("10.0.0.5", "10.0.0.0/33"));
  assert.ok(!inSubnet("10.0.0.5", ""));
});
