import assert from "node:assert/strict";
import {
  armMac,
  azureMac,
  eui64LinkLocal,
  formatMac,
  kernelMac,
  parseMac,
} from "./mac.ts";

Deno.test("parseMac() accepts colon, dash and bare forms", async (t) => {
  const want = [0x00, 0x0d, 0x3a, 0xf8, 0xa1, 0xb2];
  for (
    const text of ["00:0d:3a:f8:a1:b2", "00-0D-3A-F8-A1-B2", "000D3AF8A1B2"]
  ) {
    await t.step(text, () => assert.deepEqual([...parseMac(text)], want));
  }
});

Deno.test("parseMac() throws SyntaxError when malformed", async (t) => {
  const bad = [
    "",
    "00:0d:3a:f8:a1",
    "00:0d:3a:f8:a1:b2:c3",
    "00:0d-3a:f8:a1:b2",
    "0:d:3a:f8:a1:b2",
    "000D3AF8A1B",
    "gg:0d:3a:f8:a1:b2",
    "00.0d.3a.f8.a1.b2",
  ];
  for (const text of bad) {
    await t.step(`"${text}"`, () =>
      assert.throws(() => parseMac(text), {
        name: "SyntaxError",
        message: /Cannot parse MAC address/,
      }));
  }
});

Deno.test("formatMac() and kernelMac() give lower-case colon text", () => {
  assert.equal(
    formatMac(new Uint8Array([0, 13, 58, 248, 161, 178])),
    "00:0d:3a:f8:a1:b2",
  );
  assert.equal(kernelMac("000D3AF8A1B2"), "00:0d:3a:f8:a1:b2");
  assert.equal(kernelMac("AA-BB-CC-DD-EE-FF"), "aa:bb:cc:dd:ee:ff");
  assert.throws(() => formatMac(new Uint8Array(5)), {
    name: "RangeError",
    message: /5 bytes/,
  });
});

Deno.test("kernelMac() normalises the sandbox fabric's forms and rejects junk", () => {
  assert.equal(kernelMac("000D3AF9DCA6"), "00:0d:3a:f9:dc:a6");
  assert.equal(kernelMac("00:0D:3a:f9:dc:a6"), "00:0d:3a:f9:dc:a6");
  assert.throws(() => kernelMac("00:0d"), {
    name: "SyntaxError",
    message: /Cannot parse MAC address "00:0d"/,
  });
});

Deno.test("kernelMac() reads octets without leading zeros only when asked", () => {
  assert.equal(
    kernelMac("2:A:0:0:0:5", { shortOctets: true }),
    "02:0a:00:00:00:05",
  );
  assert.equal(
    kernelMac("00:0D:3A:F8:A1:B2", { shortOctets: true }),
    "00:0d:3a:f8:a1:b2",
  );
  assert.throws(() => kernelMac("2:A:0:0:0:5"), {
    name: "SyntaxError",
    message: /Cannot parse MAC address/,
  });
  for (const bad of ["2:0:0:0:0", "2-0-0-0-0-5", "123:0:0:0:0:5", "ACCEPT"]) {
    assert.throws(() => kernelMac(bad, { shortOctets: true }), {
      name: "SyntaxError",
      message: /Cannot parse MAC address/,
    });
  }
});

Deno.test("azureMac() accepts the three Azure/Linux forms", async (t) => {
  const cases = [
    "000D3AF9DCA6",
    "000d3af9dca6",
    "00-0D-3A-F9-DC-A6",
    "00:0d:3a:f9:dc:a6",
    " 00:0D:3A:F9:DC:A6 ",
  ];
  for (const mac of cases) {
    await t.step(mac, () => assert.equal(azureMac(mac), "000d3af9dca6"));
  }
});

Deno.test("azureMac() throws SyntaxError when the text is no MAC", async (t) => {
  for (
    const mac of ["", "000D3AF9DC", "00-0D:3A-F9-DC-A6", "zz0D3AF9DCA6", "*"]
  ) {
    await t.step(
      JSON.stringify(mac),
      () =>
        assert.throws(() => azureMac(mac), {
          name: "SyntaxError",
          message: /Cannot parse MAC address/,
        }),
    );
  }
});

Deno.test("azureMac() passes the wildcard through when asked", () => {
  for (const m of ["000D3AF9DCA6", "00-0D-3A-F9-DC-A6", "00:0d:3a:f9:dc:a6"]) {
    assert.equal(azureMac(m, { wildcard: true }), "000d3af9dca6");
  }
  assert.equal(azureMac("*", { wildcard: true }), "*");
  assert.throws(() => azureMac("00:0d", { wildcard: true }), {
    name: "SyntaxError",
    message: /Cannot parse MAC/,
  });
});

Deno.test("armMac() writes upper-case dash pairs", () => {
  assert.equal(armMac("00:0d:3a:f9:dc:a6"), "00-0D-3A-F9-DC-A6");
  assert.equal(armMac("000d3af9dca6"), "00-0D-3A-F9-DC-A6");
});

Deno.test("eui64LinkLocal() derives the kernel's link-local address of a MAC", async (t) => {
  const cases: [string, string][] = [
    // As the kernel derived them for veths (ip -6 addr).
    ["8a:3a:7c:b5:6a:a1", "fe80::883a:7cff:feb5:6aa1"],
    ["00:0d:3a:f8:a1:b2", "fe80::20d:3aff:fef8:a1b2"],
    // The U/L bit flips back to zero: the group compresses away.
    ["02:00:00:00:00:05", "fe80::ff:fe00:5"],
    ["02:00:00:00:00:00", "fe80::ff:fe00:0"],
    ["000D3AF8A1B2", "fe80::20d:3aff:fef8:a1b2"],
  ];
  for (const [mac, want] of cases) {
    await t.step(mac, () => assert.equal(eui64LinkLocal(mac), want));
  }
  assert.throws(() => eui64LinkLocal("02:00"), {
    name: "SyntaxError",
    message: /Cannot parse MAC address "02:00"/,
  });
});
