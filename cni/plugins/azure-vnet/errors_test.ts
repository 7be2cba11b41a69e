import assert from "node:assert/strict";
import { CniError } from "@vnet/cni";
import { NetlinkError, NLE } from "@vnet/netlink";
import { wrapKernel } from "./errors.ts";

function nlError(nlCode: number): NetlinkError {
  return new NetlinkError("set link up", "azure0", {
    nlCode,
    nlMessage: "libnl says no",
  });
}

Deno.test("wrapKernel() maps NLE_AGAIN, NLE_BUSY and NLE_DUMP_INTR anywhere in the cause chain to 11", async (t) => {
  for (const nlCode of [NLE.AGAIN, NLE.BUSY, NLE.DUMP_INTR]) {
    await t.step(`nlCode ${nlCode}, direct`, () => {
      const cause = nlError(nlCode);
      const e = wrapKernel('Cannot create network "azure"', cause);
      assert.equal(e.code, 11);
      assert.equal(e.message, 'Cannot create network "azure"');
      assert.equal(e.cause, cause);
    });
    await t.step(`nlCode ${nlCode}, two causes deep`, () => {
      const inner = new Error("outer step", {
        cause: new Error("middle", { cause: nlError(nlCode) }),
      });
      const e = wrapKernel("Cannot create endpoint", inner);
      assert.equal(e.code, 11);
      assert.equal(e.cause, inner);
    });
  }
});

Deno.test("wrapKernel() keeps 103 for other failures and passes CniError through", () => {
  assert.equal(wrapKernel("x", nlError(NLE.INVAL)).code, 103);
  assert.equal(wrapKernel("x", new Deno.errors.NotFound("gone")).code, 103);
  assert.equal(wrapKernel("x", "not an error").code, 103);
  const own = new CniError(104, "ebtables failed");
  assert.equal(wrapKernel("x", own), own);
});
