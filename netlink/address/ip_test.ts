import assert from "node:assert/strict";
import fc from "fast-check";
import {
  compareIps,
  formatIpv4,
  ipFamily,
  isIpv4,
  looksLikeIpv6,
  normalizeIp,
  parseIpv4,
  stripPrefix,
} from "./ip.ts";

Deno.test("parseIpv4() and formatIpv4() round-trip IPv4", () => {
  assert.equal(parseIpv4("0.0.0.0"), 0);
  assert.equal(parseIpv4("255.255.255.255"), 0xffffffff);
  assert.equal(parseIpv4("10.240.0.1"), 0x0af00001);
  assert.equal(formatIpv4(0x0af00001), "10.240.0.1");
  for (const n of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
    assert.equal(parseIpv4(formatIpv4(n)), n);
  }
  assert.throws(() => formatIpv4(-1), { name: "RangeError", message: /range/ });
  assert.throws(() => formatIpv4(2 ** 32), {
    name: "RangeError",
    message: /range/,
  });
  assert.throws(() => parseIpv4("fd00::1"), {
    name: "SyntaxError",
    message: /IPv4/,
  });
});

Deno.test("normalizeIp() and ipFamily() canonicalise addresses", () => {
  assert.equal(
    normalizeIp("2001:0db8:0000:0000:0000:0000:0000:0001"),
    "2001:db8::1",
  );
  assert.equal(normalizeIp("2001:db8:0:1:0:0:0:1"), "2001:db8:0:1::1");
  assert.equal(normalizeIp("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
  assert.equal(normalizeIp("1:2:3:4:5:6:7:0"), "1:2:3:4:5:6:7:0");
  assert.equal(normalizeIp("::"), "::");
  assert.equal(normalizeIp("10.0.0.1"), "10.0.0.1");
  assert.equal(ipFamily("10.0.0.1"), 4);
  assert.equal(ipFamily("::1"), 6);
  assert.equal(ipFamily("x"), undefined);
  assert.throws(() => normalizeIp("10.0.0.1/24"), {
    name: "SyntaxError",
    message: /Cannot parse IP address/,
  });
});

Deno.test("normalizeIp() takes a dotted quad in IPv6 only for the final 32 bits, as inet_pton does", async (t) => {
  for (
    const bad of [
      "1.2.3.4::",
      "1:2:1.2.3.4::5",
      "1.2.3.4::5",
      "::1.2.3.4:5",
      "1:2:3:4:5:6:7:1.2.3.4",
      "1:2:3:4:5:1.2.3.4",
      "::01.2.3.4",
      "::1.2.3",
    ]
  ) {
    await t.step(`refuses ${bad}`, () => {
      assert.throws(() => normalizeIp(bad), {
        name: "SyntaxError",
        message: /Cannot parse IP address/,
      });
      assert.equal(ipFamily(bad), undefined);
    });
  }
  const good: [string, string][] = [
    ["::1.2.3.4", "::1.2.3.4"],
    ["::ffff:1.2.3.4", "::ffff:1.2.3.4"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ["1::ffff:1.2.3.4", "1::ffff:102:304"],
    ["::ffff:0:1.2.3.4", "::ffff:0:102:304"],
  ];
  for (const [text, want] of good) {
    await t.step(`takes ${text}`, () => assert.equal(normalizeIp(text), want));
  }
});

Deno.test("normalizeIp() writes IPv6 as inet_ntop does, IPv4-mapped and -compatible addresses with a dotted quad", () => {
  // Each pair: input and what glibc's inet_ntop (libnl's nl_addr2str, the
  // kernel side's text) prints for it.
  const cases: [string, string][] = [
    ["::ffff:102:304", "::ffff:1.2.3.4"],
    ["0:0:0:0:0:FFFF:0A01:0203", "::ffff:10.1.2.3"],
    ["::ffff:0:0", "::ffff:0.0.0.0"],
    ["::102:304", "::1.2.3.4"],
    ["::1:0", "::0.1.0.0"],
    ["::1", "::1"],
    ["::", "::"],
    ["::100", "::100"],
    ["::ffff", "::ffff"],
    ["::ffff:1:2:3", "::ffff:1:2:3"],
    ["0:0:0:0:0:1:0:0", "::1:0:0"],
    ["1::ffff:102:304", "1::ffff:102:304"],
    ["64:ff9b::102:304", "64:ff9b::102:304"],
  ];
  for (const [text, want] of cases) assert.equal(normalizeIp(text), want, text);
});

Deno.test("normalizeIp() parses back what it writes, in hex or with a dotted quad", () => {
  // Groups biased to 0 and ffff, where the special forms are.
  const group = fc.oneof(
    fc.constant(0),
    fc.constant(0xffff),
    fc.integer({ min: 0, max: 0xffff }),
  );
  fc.assert(
    fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (g) => {
      const hex = g.map((x) => x.toString(16)).join(":");
      const [hi, lo] = [g[6] ?? 0, g[7] ?? 0];
      const quad = [hi >> 8, hi & 255, lo >> 8, lo & 255];
      const mixed = `${g.slice(0, 6).map((x) => x.toString(16)).join(":")}:${
        quad.join(".")
      }`;
      const text = normalizeIp(hex);
      assert.equal(normalizeIp(mixed), text, mixed);
      assert.equal(normalizeIp(text), text, text);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("parseIpv4() and formatIpv4() round-trip dotted quads", () => {
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

Deno.test("isIpv4() accepts exactly what parseIpv4() parses", () => {
  assert.ok(isIpv4("10.240.0.5"));
  for (const bad of ["", "10.240.0.5/24", "01.2.3.4", " 1.2.3.4", "::1"]) {
    assert.ok(!isIpv4(bad), bad);
  }
});

Deno.test("stripPrefix() and looksLikeIpv6() read address text", () => {
  assert.equal(stripPrefix("10.0.0.5/24"), "10.0.0.5");
  assert.equal(stripPrefix("10.0.0.5"), "10.0.0.5");
  assert.equal(stripPrefix("fd00::5/64"), "fd00::5");
  assert.ok(looksLikeIpv6("fd00::5/64"));
  assert.ok(looksLikeIpv6("::"));
  assert.ok(!looksLikeIpv6("10.0.0.5/24"));
});

Deno.test("compareIps() orders by family, then by value", () => {
  assert.ok(compareIps("10.0.0.2", "10.0.0.10") < 0);
  assert.ok(compareIps("fd00::1:0", "fd00::ffff") > 0);
  assert.equal(compareIps("fd00::1", "fd00:0::1"), 0);
  assert.ok(compareIps("255.255.255.255", "::") < 0);
  assert.throws(() => compareIps("x", "10.0.0.1"), SyntaxError);
});

/** The dotted-quad grammar as a regular expression, to check the parser. */
const DOTTED_QUAD =
  /^(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})\.(?:0|[1-9][0-9]{0,2})$/;

function referenceParse(text: string): number | undefined {
  if (!DOTTED_QUAD.test(text)) return undefined;
  const parts = text.split(".").map(Number);
  if (parts.some((p) => p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

Deno.test("isIpv4() and parseIpv4() agree with the dotted-quad grammar on any text", () => {
  const edges = [
    "0.0.0.0",
    "255.255.255.255",
    "256.1.1.1",
    "1.2.3.4.",
    ".1.2.3.4",
    "1..2.3",
    "1.2.3.4.5",
    "00.1.2.3",
    "1.2.3.04",
    "1.2.3.1000",
    "1.2.3.+4",
    "1.2.3.4 ",
    "\u0661.2.3.4",
    "1.2.3",
    "",
    ".",
    "9.99.199.249",
  ];
  const chars = fc.constantFrom(..."0123456789.0123456789.a -".split(""));
  const text = fc.oneof(
    fc.string({ unit: chars, maxLength: 17 }),
    fc.tuple(
      fc.nat(300),
      fc.nat(300),
      fc.nat(300),
      fc.nat(300),
    ).map((p) => p.join(".")),
    fc.constantFrom(...edges),
  );
  fc.assert(
    fc.property(text, (t) => {
      const want = referenceParse(t);
      assert.equal(isIpv4(t), want !== undefined, t);
      if (want !== undefined) assert.equal(parseIpv4(t), want, t);
    }),
    { numRuns: 5000 },
  );
});
