import assert from "node:assert/strict";
import { formatIpv4, parseIpv4 } from "./ip.ts";
import {
  formatIpv4Cidr,
  ipv4Broadcast,
  ipv4CidrContains,
  ipv4Gateway,
  parseIpv4Cidr,
} from "./ipv4_cidr.ts";

Deno.test("parseIpv4Cidr() clears host bits and derives gateway and broadcast", () => {
  const c = parseIpv4Cidr("10.240.7.9/16");
  assert.equal(formatIpv4Cidr(c), "10.240.0.0/16");
  assert.equal(formatIpv4(ipv4Gateway(c)), "10.240.0.1");
  assert.equal(formatIpv4(ipv4Broadcast(c)), "10.240.255.255");
  assert.ok(ipv4CidrContains(c, parseIpv4("10.240.200.1")));
  assert.ok(!ipv4CidrContains(c, parseIpv4("10.241.0.1")));
  assert.equal(formatIpv4Cidr(parseIpv4Cidr("0.0.0.0/0")), "0.0.0.0/0");
  assert.throws(() => parseIpv4Cidr("10.0.0.0/33"), { name: "SyntaxError" });
  assert.throws(() => parseIpv4Cidr("10.0.0.0"), { name: "SyntaxError" });
});

Deno.test("ipv4Gateway() is the network itself for a /31 or /32", () => {
  assert.equal(
    formatIpv4(ipv4Gateway(parseIpv4Cidr("10.0.0.4/31"))),
    "10.0.0.4",
  );
  assert.equal(
    formatIpv4(ipv4Gateway(parseIpv4Cidr("10.0.0.5/32"))),
    "10.0.0.5",
  );
  assert.equal(
    formatIpv4(ipv4Broadcast(parseIpv4Cidr("1.2.3.4/0"))),
    "255.255.255.255",
  );
});
