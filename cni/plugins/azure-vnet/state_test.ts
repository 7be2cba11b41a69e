import assert from "node:assert/strict";
import {
  emptyState,
  type EndpointRecord,
  parseState,
  readState,
  statePath,
  updateState,
  withState,
} from "./state.ts";

function endpoint(containerId: string): EndpointRecord {
  return {
    network: "azure",
    containerId,
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
}

Deno.test("withState() round-trips a document through the locked file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await withState(dir, async (s) => {
      s.state.endpoints["c/eth0"] = endpoint("c");
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

Deno.test("updateState() and readState() share one frozen state while the file holds what was written (#14)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await updateState(dir, (s) => {
      s.endpoints["a/eth0"] = endpoint("a");
    });
    const first = await readState(dir);
    await updateState(dir, (s) => {
      s.endpoints["b/eth0"] = endpoint("b");
    });
    const second = await readState(dir);
    // The second document was not parsed from the file: it is the one the
    // update wrote, sharing the first record with the first document.
    assert.equal(await readState(dir), second);
    assert.equal(second.endpoints["a/eth0"], first.endpoints["a/eth0"]);
    assert.ok(Object.isFrozen(second.endpoints["b/eth0"]?.addresses));
    assert.deepEqual(
      JSON.parse(await Deno.readTextFile(statePath(dir))),
      JSON.parse(JSON.stringify(second)),
    );
    // A change made under withState() (fresh, mutable) is read afresh.
    await withState(dir, async (s) => {
      delete s.state.endpoints["a/eth0"];
      await s.save();
    });
    assert.deepEqual(Object.keys((await readState(dir)).endpoints), [
      "b/eth0",
    ]);
    // An update that edits a record instead of replacing it fails.
    await assert.rejects(
      updateState(dir, (s) => {
        (s.endpoints["b/eth0"] as EndpointRecord).mtu = 9000;
      }),
      TypeError,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
