import assert from "node:assert/strict";
import { AF_INET, AF_INET6, AF_LLC, nlAddrText, parseNlAddr } from "./libnl.ts";

// These tests load libnl but need no kernel access and no root.

Deno.test("parseNlAddr() and nlAddrText() round-trip addresses", async (t) => {
  const what = { op: "parse", object: "address" };
  const cases: [string, number, string | undefined][] = [
    ["10.1.2.3/24", AF_INET, "10.1.2.3"],
    ["10.1.2.3", AF_INET, "10.1.2.3"],
    ["fd00::1/64", AF_INET6, "fd00::1"],
    ["02:00:00:aa:bb:0f", AF_LLC, "02:00:00:aa:bb:0f"],
    ["default", AF_INET, undefined],
  ];
  for (const [text, family, want] of cases) {
    await t.step(text, () => {
      using stack = new DisposableStack();
      const addr = parseNlAddr(stack, text, { family, what });
      assert.equal(nlAddrText(addr), want);
    });
  }
  await t.step("bad text is a NetlinkError", () => {
    using stack = new DisposableStack();
    assert.throws(
      () => parseNlAddr(stack, "10.1.2.300", { family: AF_INET, what }),
      { name: "NetlinkError", message: /^Cannot parse "address": / },
    );
  });
});
