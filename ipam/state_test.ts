import assert from "node:assert/strict";
import { parseIpamState } from "./state.ts";

/** A version-1 state with one pool of 10.0.0.0/24 and `addresses`. */
function doc(
  addresses: Record<string, unknown>,
  pool: Record<string, unknown> = {},
): unknown {
  return {
    version: 1,
    lastRefresh: 0,
    bootId: "b",
    pools: {
      "10.0.0.0/24": {
        subnet: "10.0.0.0/24",
        gateway: "10.0.0.1",
        macAddress: "*",
        priority: 0,
        primaryIps: [],
        addresses,
        ...pool,
      },
    },
  };
}

Deno.test("parseIpamState() calls a hand-edited pool with a malformed address or subnet corrupt (102)", async (t) => {
  assert.ok(parseIpamState(doc({ "10.0.0.5": {} }), "/x.json"));
  const cases: [string, unknown, RegExp][] = [
    [
      "an address key that is no address",
      doc({ "10.0.0.x": {} }),
      /address "10\.0\.0\.x" of pool "10\.0\.0\.0\/24" is malformed/,
    ],
    [
      "an IPv6 key in an IPv4 pool",
      doc({ "fd00::5": {} }),
      /address "fd00::5"/,
    ],
    [
      "a subnet that is no CIDR",
      doc({}, { subnet: "10.0.0.0/33" }),
      /pool "10\.0\.0\.0\/24" has subnet "10\.0\.0\.0\/33"/,
    ],
    [
      "a key that is not its subnet",
      doc({}, { subnet: "10.0.1.0/24" }),
      /has subnet "10\.0\.1\.0\/24"/,
    ],
  ];
  for (const [what, value, message] of cases) {
    await t.step(what, () => {
      assert.throws(() => parseIpamState(value, "/x.json"), {
        name: "CniError",
        code: 102,
        message,
      });
    });
  }
});
