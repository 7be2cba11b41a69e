import assert from "node:assert/strict";
import { emptyState, parseState, statePath, withState } from "./state.ts";

Deno.test("withState() round-trips a document through the locked file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withState(dir, async (s) => {
      s.state.endpoints["c/eth0"] = {
        network: "azure",
        containerId: "c",
        ifName: "eth0",
        netns: "/run/netns/x",
        hostVeth: "azv0123456789a",
        hostMac: "02:00:00:00:00:01",
        podMac: "02:00:00:00:00:02",
        mtu: 1500,
        addresses: ["10.0.0.5/24"],
        ipamRoute: "in-process",
        result: { cniVersion: "1.1.0" },
      };
      await s.save();
    });
    const keys = await withState(dir, (s) => Object.keys(s.state.endpoints));
    assert.deepEqual(keys, ["c/eth0"]);
    const raw = JSON.parse(await Deno.readTextFile(statePath(dir)));
    assert.equal(raw.version, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseState() rejects a wrong shape or version with code 102", () => {
  assert.deepEqual(parseState(undefined, "/p"), emptyState());
  assert.throws(() => parseState({ version: 2 }, "/p"), {
    name: "CniError",
    code: 102,
    message: /format version 2/,
  });
  assert.throws(
    () => parseState({ version: 1, networks: [], endpoints: {} }, "/p"),
    { name: "CniError", code: 102, message: /unexpected shape at "networks"/ },
  );
});

Deno.test("withState() reports a corrupt file with code 102", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(statePath(dir), "{not json");
    await assert.rejects(withState(dir, () => 0), {
      name: "CniError",
      code: 102,
      message: /corrupt/,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
