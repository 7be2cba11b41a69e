import assert from "node:assert/strict";
import { formatArmMac, normalizeMac } from "./mac.ts";

Deno.test("normalizeMac() accepts the three Azure/Linux forms", async (t) => {
  const cases = [
    "000D3AF9DCA6",
    "000d3af9dca6",
    "00-0D-3A-F9-DC-A6",
    "00:0d:3a:f9:dc:a6",
    " 00:0D:3A:F9:DC:A6 ",
  ];
  for (const mac of cases) {
    await t.step(mac, () => assert.equal(normalizeMac(mac), "000d3af9dca6"));
  }
});

Deno.test("normalizeMac() throws SyntaxError when the text is no MAC", async (t) => {
  for (
    const mac of ["", "000D3AF9DC", "00-0D:3A-F9-DC-A6", "zz0D3AF9DCA6", "*"]
  ) {
    await t.step(
      JSON.stringify(mac),
      () =>
        assert.throws(() => normalizeMac(mac), {
          name: "SyntaxError",
          message: /Cannot parse MAC address/,
        }),
    );
  }
});

Deno.test("formatArmMac() writes upper-case dash pairs", () => {
  assert.equal(formatArmMac("00:0d:3a:f9:dc:a6"), "00-0D-3A-F9-DC-A6");
});
