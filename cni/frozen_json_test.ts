import assert from "node:assert/strict";
import { deepFreeze, encodeJson, isDeepFrozen } from "./frozen_json.ts";

/** What encodeJson() encodes, as text. */
function asText(value: unknown): string {
  return new TextDecoder().decode(encodeJson(value));
}

/** A small deterministic generator of JSON-like values. */
function randomValue(seed: { n: number }, depth: number): unknown {
  seed.n = (seed.n * 1103515245 + 12345) % 2147483648;
  const pick = seed.n % (depth > 3 ? 6 : 9);
  switch (pick) {
    case 0:
      return null;
    case 1:
      return seed.n % 2 === 0;
    case 2:
      return (seed.n % 1000) / 7;
    case 3:
      return `s"\\\n${seed.n % 97}é`;
    case 4:
      return undefined;
    case 5:
      return -(seed.n % 50);
    case 6:
      return [];
    case 7:
      return Array.from(
        { length: seed.n % 4 },
        () => randomValue(seed, depth + 1),
      );
    default: {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < seed.n % 5; i++) {
        o[`k${i}-${seed.n % 13}`] = randomValue(seed, depth + 1);
      }
      return o;
    }
  }
}

Deno.test("encodeJson() encodes what JSON.stringify(value, null, 2) prints", () => {
  const seed = { n: 7 };
  for (let i = 0; i < 500; i++) {
    const value = { doc: randomValue(seed, 0), list: [randomValue(seed, 1)] };
    const want = JSON.stringify(value, null, 2);
    assert.equal(asText(value), want);
    // Frozen, and printed a second time from what the first print kept.
    deepFreeze(value);
    assert.equal(asText(value), want);
    assert.equal(asText(value), want);
  }
  const holes: unknown[] = [1];
  holes[2] = 3;
  const special = {
    nan: NaN,
    inf: -Infinity,
    fn: () => 1,
    date: new Date(0),
    holes,
    nested: { date: new Date(1000), empty: {}, none: [] },
    gone: { toJSON: () => undefined },
    listed: [{ toJSON: () => undefined }, { toJSON: (k: string) => `at ${k}` }],
  };
  assert.equal(asText(special), JSON.stringify(special, null, 2));
  assert.throws(() => encodeJson(undefined), TypeError);
  assert.equal(asText("x"), '"x"');
  assert.equal(
    new TextDecoder().decode(encodeJson({ a: "é" }, "\n")),
    `${JSON.stringify({ a: "é" }, null, 2)}\n`,
  );
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  assert.throws(() => asText(cycle), TypeError);
  assert.throws(() => asText({ n: 1n }), TypeError);
});

Deno.test("encodeJson() reuses a frozen record's bytes at its depth, and only there", () => {
  const record = deepFreeze({ ip: "10.0.0.4", tags: ["a"] });
  const doc = { endpoints: { a: record } };
  assert.equal(asText(doc), JSON.stringify(doc, null, 2));
  // The same record at another depth is printed with that depth's indent.
  const deeper = { x: { y: { z: record } } };
  assert.equal(asText(deeper), JSON.stringify(deeper, null, 2));
  assert.equal(asText(record), JSON.stringify(record, null, 2));
  assert.equal(asText(doc), JSON.stringify(doc, null, 2));
});

Deno.test("encodeJson() encodes a frozen record once, however many documents hold it", () => {
  const record = deepFreeze({ ip: "10.0.0.4", tags: ["a", "b"] });
  const { encode, encodeInto } = TextEncoder.prototype;
  const seen: string[] = [];
  TextEncoder.prototype.encode = function (input?: string) {
    seen.push(input ?? "");
    return encode.call(this, input);
  };
  TextEncoder.prototype.encodeInto = function (input, dest) {
    seen.push(input);
    return encodeInto.call(this, input, dest);
  };
  try {
    for (let i = 0; i < 3; i++) {
      asText({ version: i, endpoints: deepFreeze({ a: record }) });
    }
  } finally {
    Object.assign(TextEncoder.prototype, { encode, encodeInto });
  }
  assert.equal(seen.filter((t) => t.includes("10.0.0.4")).length, 1);
});

Deno.test("encodeJson() never reuses the bytes of an object that can still change", () => {
  const inner = { n: 1 };
  const shallow = Object.freeze({ inner });
  assert.equal(asText(shallow), JSON.stringify(shallow, null, 2));
  inner.n = 2;
  assert.equal(asText(shallow), JSON.stringify(shallow, null, 2));
  assert.ok(!isDeepFrozen(shallow));
});

Deno.test("deepFreeze() freezes everything inside, and what was shared stays shared", () => {
  const shared = deepFreeze({ a: [{ b: 1 }] });
  const next = deepFreeze({ shared, fresh: { c: [2] } });
  assert.equal(next.shared, shared);
  assert.ok(isDeepFrozen(next.fresh.c));
  assert.throws(() => {
    (next.fresh.c as number[]).push(3);
  }, TypeError);
  assert.throws(() => {
    (shared.a[0] as { b: number }).b = 2;
  }, TypeError);
  assert.equal(deepFreeze(3), 3);
  assert.equal(deepFreeze(null), null);
});
