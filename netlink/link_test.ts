import assert from "node:assert/strict";
import { validateIfName, validateMtu } from "./link.ts";
import { mapNetlinkError, NetlinkError } from "./errors.ts";

Deno.test("validateIfName() accepts kernel-valid names", () => {
  for (const name of ["eth0", "azv1234567890ab", "a", "br-x.1", "ü"]) {
    validateIfName(name);
  }
});

Deno.test("validateIfName() rejects bad names before libnl", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["", "RangeError", /0 bytes/],
    ["azv1234567890abc", "RangeError", /16 bytes/],
    ["ééééééééé", "RangeError", /18 bytes/],
    [".", "RangeError", /reserved/],
    ["..", "RangeError", /reserved/],
    ["a/b", "TypeError", /contains/],
    ["a:b", "TypeError", /contains/],
    ["a b", "TypeError", /contains/],
    ["a\tb", "TypeError", /contains/],
  ];
  for (const [name, cls, msg] of cases) {
    await t.step(
      JSON.stringify(name),
      () =>
        assert.throws(() => validateIfName(name), { name: cls, message: msg }),
    );
  }
});

Deno.test("validateMtu() rejects out-of-range MTUs", () => {
  validateMtu(68);
  validateMtu(65535);
  for (const mtu of [67, 65536, 1500.5, -1]) {
    assert.throws(() => validateMtu(mtu), {
      name: "RangeError",
      message: /Cannot use MTU/,
    });
  }
});

Deno.test("mapNetlinkError() maps libnl codes to Deno classes", async (t) => {
  const cases: [number, number | undefined, string][] = [
    [12, undefined, "NotFound"],
    [31, undefined, "NotFound"],
    [6, undefined, "AlreadyExists"],
    [28, undefined, "PermissionDenied"],
    [27, undefined, "PermissionDenied"],
    [0, 2, "NotFound"],
    [0, 17, "AlreadyExists"],
    [0, 1, "PermissionDenied"],
    [25, undefined, "NetlinkError"],
    [1, undefined, "NetlinkError"],
  ];
  for (const [nlCode, errno, cls] of cases) {
    await t.step(`${nlCode}/${errno} -> ${cls}`, () => {
      const e = new NetlinkError("add veth", "azv1", {
        nlCode,
        nlMessage: "Boom",
        ...(errno === undefined ? {} : { errno }),
      });
      const mapped = mapNetlinkError(e);
      assert.equal(mapped.name, cls);
      assert.equal(mapped.message, 'Cannot add veth "azv1": Boom');
      if (mapped !== e) assert.equal(mapped.cause, e);
    });
  }
});
