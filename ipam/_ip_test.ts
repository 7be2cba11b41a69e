import assert from "node:assert/strict";
import {
  broadcastOf,
  cidrContains,
  formatCidr,
  formatIpv4,
  gatewayOf,
  normalizeMac,
  parseCidr,
  parseIpv4,
  stripPrefix,
} from "./_ip.ts";

Deno.test("parseIpv4() and formatIpv4() round-trip", () => {
  for (const ip of ["0.0.0.0", "10.240.0.5", "255.255.255.255", "1.2.3.4"]) {
    assert.equal(formatIpv4(parseIpv4(ip)), ip);
  }
});

Deno.test("parseIpv4() throws SyntaxError on bad text", () => {
  for (const bad of ["", "1.2.3", "256.0.0.1", "01.2.3.4", "a.b.c.d", "::1"]) {
    assert.throws(() => parseIpv4(bad), {
      name: "SyntaxError",
      message: /Cannot parse IPv4/,
    });
  }
});

Deno.test("parseCidr() clears host bits and derives gateway and broadcast", () => {
  const c = parseCidr("10.240.7.9/16");
  assert.equal(formatCidr(c), "10.240.0.0/16");
  assert.equal(formatIpv4(gatewayOf(c)), "10.240.0.1");
  assert.equal(formatIpv4(broadcastOf(c)), "10.240.255.255");
  assert.ok(cidrContains(c, parseIpv4("10.240.200.1")));
  assert.ok(!cidrContains(c, parseIpv4("10.241.0.1")));
  assert.equal(formatCidr(parseCidr("0.0.0.0/0")), "0.0.0.0/0");
  assert.throws(() => parseCidr("10.0.0.0/33"), { name: "SyntaxError" });
  assert.throws(() => parseCidr("10.0.0.0"), { name: "SyntaxError" });
});

Deno.test("normalizeMac() accepts the Azure, ARM and Linux forms", () => {
  for (const m of ["000D3AF9DCA6", "00-0D-3A-F9-DC-A6", "00:0d:3a:f9:dc:a6"]) {
    assert.equal(normalizeMac(m), "000d3af9dca6");
  }
  assert.equal(normalizeMac("*"), "*");
  assert.throws(() => normalizeMac("00:0d"), {
    name: "SyntaxError",
    message: /Cannot parse MAC/,
  });
  assert.equal(stripPrefix("10.0.0.5/24"), "10.0.0.5");
});
