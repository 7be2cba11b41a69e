import assert from "node:assert/strict";
import { updateStateFile } from "./state_batch.ts";
import { readParsedStateFile, withStateLock } from "./state_file.ts";

interface Doc {
  version: number;
  items: Record<string, { n: number; tags: string[] }>;
}

/** A parser that counts its calls, and the copy an update may edit. */
function counted() {
  const calls = { n: 0 };
  const parse = (raw: unknown): Doc => {
    calls.n++;
    if (raw === undefined) return { version: 1, items: {} };
    if ((raw as Doc).version !== 1) throw new Error("bad version");
    return raw as Doc;
  };
  const copy = (d: Doc): Doc => ({ ...d, items: { ...d.items } });
  return { calls, parse, copy };
}

/** Runs `test` on a state file in a fresh directory, with a counted parser. */
async function onFile(
  test: (path: string, doc: ReturnType<typeof counted>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "cnitest-batch-" });
  try {
    await test(`${dir}/s.json`, counted());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function put(key: string, n: number) {
  return (d: Doc) => {
    d.items[key] = { n, tags: [key] };
    return { value: n, next: d };
  };
}

Deno.test("updateStateFile() with copy parses a file once while it holds what this process wrote", () =>
  onFile(async (path, { calls, parse, copy }) => {
    await updateStateFile(path, { parse, copy, fn: put("a", 1) });
    await updateStateFile(path, { parse, copy, fn: put("b", 2) });
    const seen = await readParsedStateFile(path, parse);
    // The missing file's parse only: the second update and the read reused
    // what the updates wrote.
    assert.equal(calls.n, 1);
    assert.deepEqual(seen.items, {
      a: { n: 1, tags: ["a"] },
      b: { n: 2, tags: ["b"] },
    });
    assert.ok(Object.isFrozen(seen.items.a?.tags));
    assert.equal(
      await Deno.readTextFile(path),
      `${JSON.stringify(seen, null, 2)}\n`,
    );
    // Another writer changes the text: it is parsed again, and its content is
    // what the next update starts from.
    await withStateLock(path, async (f) => {
      const raw = await f.read() as Doc;
      raw.items.c = { n: 3, tags: [] };
      await f.write(raw);
    });
    await updateStateFile(path, { parse, copy, fn: put("d", 4) });
    assert.equal(calls.n, 2);
    const last = await readParsedStateFile(path, parse);
    assert.deepEqual(Object.keys(last.items), ["a", "b", "c", "d"]);
    assert.equal(calls.n, 2);
    // A different parser never gets another's state.
    const other = counted();
    await readParsedStateFile(path, other.parse);
    assert.equal(other.calls.n, 1);
  }));

Deno.test("updateStateFile() with copy: an update that edits a shared record throws alone", () =>
  onFile(async (path, { parse, copy }) => {
    await updateStateFile(path, { parse, copy, fn: put("a", 1) });
    const results = await Promise.allSettled([
      updateStateFile(path, { parse, copy, fn: put("b", 2) }),
      updateStateFile(path, {
        parse,
        copy,
        fn: (d) => {
          d.items.x = { n: 9, tags: [] };
          (d.items.a as { n: number }).n = 5;
          return { value: 0, next: d };
        },
      }),
      updateStateFile(path, { parse, copy, fn: put("c", 3) }),
    ]);
    assert.deepEqual(results.map((r) => r.status), [
      "fulfilled",
      "rejected",
      "fulfilled",
    ]);
    assert.ok(
      results[1]?.status === "rejected" &&
        results[1].reason instanceof TypeError,
    );
    const doc = JSON.parse(await Deno.readTextFile(path)) as Doc;
    assert.deepEqual(Object.keys(doc.items), ["a", "b", "c"]);
    assert.equal(doc.items.a?.n, 1);
  }));

Deno.test("readParsedStateFile() still reports damage done after a remembered write", () =>
  onFile(async (path, { parse, copy }) => {
    await updateStateFile(path, { parse, copy, fn: put("a", 1) });
    await Deno.writeTextFile(path, `{"version": 1, "items": {`);
    await assert.rejects(readParsedStateFile(path, parse), { code: 102 });
    await Deno.writeTextFile(path, `{"version": 2}`);
    await assert.rejects(readParsedStateFile(path, parse), /bad version/);
  }));

Deno.test("updateStateFile() with copy: a record an earlier update of the batch made is frozen for the next one", () =>
  onFile(async (path, { parse, copy }) => {
    await updateStateFile(path, { parse, copy, fn: put("a", 1) });
    const results = await Promise.allSettled([
      updateStateFile(path, { parse, copy, fn: put("b", 2) }),
      updateStateFile(path, { parse, copy, fn: put("c", 3) }),
      updateStateFile(path, {
        parse,
        copy,
        fn: (d) => {
          (d.items.c as { n: number }).n = 99;
          return { value: 0, next: d };
        },
      }),
    ]);
    assert.deepEqual(results.map((r) => r.status), [
      "fulfilled",
      "fulfilled",
      "rejected",
    ]);
    const doc = JSON.parse(await Deno.readTextFile(path)) as Doc;
    assert.equal(doc.items.c?.n, 3);
  }));

/**
 * Another process holding the state file's flock (`flock(1)`) until
 * released; resolves once it holds it.
 */
async function foreignHolder(path: string) {
  const child = new Deno.Command("flock", {
    args: ["--exclusive", `${path}.lock`, "sh", "-c", "echo locked; cat"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const first = await reader.read();
  assert.equal(new TextDecoder().decode(first.value).trim(), "locked");
  reader.releaseLock();
  const writer = child.stdin.getWriter();
  return {
    async release(): Promise<void> {
      await writer.close();
      await child.stdout.cancel();
      assert.ok((await child.status).success);
    },
  };
}

Deno.test("updateStateFile() on a lock timeout rejects only the updates past their own deadline", () =>
  onFile(async (path, { parse, copy }) => {
    const holder = await foreignHolder(path);
    const t0 = performance.now();
    const settledAt: Record<string, number> = {};
    // Settled outcomes at once: a rejection is handled when it happens.
    const update = (key: string, n: number, lockTimeoutMs: number) =>
      Promise.allSettled([
        updateStateFile(path, { parse, copy, fn: put(key, n) }, {
          lockTimeoutMs,
        }).finally(() => settledAt[key] = performance.now() - t0),
      ]).then(([r]) => r);
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    // The first batch gives up after 50 ms; the next one, a short bound
    // and two long ones, then waits for the lock.
    const first = update("p", 0, 50);
    const batch = [update("a", 1, 400), update("b", 2, 5000)];
    const sameBatch = update("c", 3, 5000);
    // Arrives while that batch waits: it waits for the one after, but its
    // own bound still holds.
    await sleep(100);
    const late = update("d", 4, 100);
    await sleep(600);
    const releasedAt = performance.now() - t0;
    await holder.release();
    const results = await Promise.all([first, ...batch, sameBatch, late]);
    assert.deepEqual(results.map((r) => r?.status), [
      "rejected",
      "rejected",
      "fulfilled",
      "fulfilled",
      "rejected",
    ]);
    for (const [i, ms] of [[0, 50], [1, 400], [4, 100]] as const) {
      const r = results[i];
      assert.ok(r?.status === "rejected");
      assert.equal((r.reason as { code?: number }).code, 11);
      assert.match(String(r.reason), new RegExp(`timed out after ${ms} ms`));
    }
    const a = settledAt.a ?? 0;
    assert.ok(a >= 400 && a < releasedAt, `a settled at ${a} ms`);
    const d = settledAt.d ?? 0;
    assert.ok(d >= 200 && d < 380, `d settled at ${d} ms`);
    const doc = JSON.parse(await Deno.readTextFile(path)) as Doc;
    assert.deepEqual(Object.keys(doc.items), ["b", "c"]);
  }));
