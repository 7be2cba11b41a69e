import assert from "node:assert/strict";
import {
  decodeReply,
  decodeRequest,
  encodeFrame,
  FrameError,
  readFrame,
} from "./frame.ts";

/** A reader over fixed bytes, handing out at most `chunk` bytes a read. */
function reader(bytes: Uint8Array, chunk = 3): Pick<Deno.Conn, "read"> {
  let off = 0;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (off === bytes.length) return Promise.resolve(null);
      const n = Math.min(p.length, chunk, bytes.length - off);
      p.set(bytes.subarray(off, off + n));
      off += n;
      return Promise.resolve(n);
    },
  };
}

function header(length: number): Uint8Array {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, length);
  return h;
}

Deno.test("encodeFrame() and readFrame() round-trip a request in small reads", async () => {
  const req = {
    plugin: "azure-vnet" as const,
    env: { CNI_COMMAND: "ADD", X: "ü" },
    stdin: new TextEncoder().encode('{"cniVersion":"1.0.0"}').toBase64(),
  };
  const body = await readFrame(reader(encodeFrame(req)), 1024);
  assert.ok(body !== undefined);
  assert.deepEqual(decodeRequest(body), req);
});

Deno.test("readFrame() limits and truncation", async (t) => {
  await t.step("returns undefined on EOF before any byte", async () => {
    assert.equal(await readFrame(reader(new Uint8Array()), 10), undefined);
  });
  await t.step("accepts a body of exactly the limit", async () => {
    const frame = new Uint8Array([...header(10), ...new Uint8Array(10)]);
    assert.equal((await readFrame(reader(frame), 10))?.length, 10);
  });
  await t.step("refuses a declared length past the limit unread", async () => {
    await assert.rejects(readFrame(reader(header(11)), 10), {
      name: "FrameError",
      oversize: true,
      message: /11 bytes is larger than the limit of 10/,
    });
  });
  await t.step("refuses a truncated header and body", async () => {
    await assert.rejects(readFrame(reader(new Uint8Array(2)), 10), {
      name: "FrameError",
      oversize: false,
      message: /Truncated frame: 2 of 4/,
    });
    await assert.rejects(readFrame(reader(header(5)), 10), {
      name: "FrameError",
      message: /Truncated frame: 0 of 5/,
    });
  });
});

Deno.test("decodeRequest() refuses malformed requests", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["not JSON", "{", /Malformed frame/],
    ["not an object", "[1]", /not an object/],
    [
      "unknown plugin",
      '{"plugin":"bridge","env":{},"stdin":""}',
      /Unknown plugin "bridge"/,
    ],
    [
      "env not strings",
      '{"plugin":"azure-vnet","env":{"A":1},"stdin":""}',
      /env must map/,
    ],
    ["stdin missing", '{"plugin":"azure-vnet","env":{}}', /stdin must be/],
  ];
  for (const [name, text, message] of cases) {
    await t.step(name, () => {
      assert.throws(
        () => decodeRequest(new TextEncoder().encode(text)),
        (err: unknown) =>
          err instanceof FrameError && message.test(err.message),
      );
    });
  }
});

Deno.test("decodeReply() refuses a reply without an integer code", () => {
  assert.throws(
    () => decodeReply(new TextEncoder().encode('{"code":"0","stdout":""}')),
    { name: "FrameError", message: /expected \{code, stdout\}/ },
  );
});
