import assert from "node:assert/strict";
import {
  AF_INET,
  AF_INET6,
  AF_LLC,
  DUMP_ATTEMPTS,
  dumpCache,
  nlAddrText,
  parseNlAddr,
} from "./libnl.ts";

// These tests load libnl but need no kernel access and no root.

Deno.test("dumpCache() retries a bounded number of times on NLE_DUMP_INTR", async (t) => {
  await t.step("gives up after DUMP_ATTEMPTS", () => {
    let calls = 0;
    using stack = new DisposableStack();
    assert.throws(
      () =>
        dumpCache(stack, () => {
          calls++;
          return -33;
        }, { op: "list", object: "links" }),
      { name: "NetlinkError", message: /^Cannot list "links": / },
    );
    assert.equal(calls, DUMP_ATTEMPTS);
  });
  await t.step("stops retrying on another error", () => {
    const codes = [-33, -33, -6];
    let calls = 0;
    using stack = new DisposableStack();
    assert.throws(
      () =>
        dumpCache(
          stack,
          () => codes[calls++] ?? 0,
          { op: "list", object: "routes" },
        ),
      { name: "AlreadyExists", message: /Cannot list "routes": Object exists/ },
    );
    assert.equal(calls, 3);
  });
});

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
