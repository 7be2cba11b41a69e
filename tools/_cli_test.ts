import assert from "node:assert/strict";
import { parseCli } from "./_cli.ts";

const SPEC = {
  usage: "usage: tool [--force] [--dir DIR]",
  options: {
    force: { type: "boolean" },
    dir: { type: "string", default: "/opt" },
    n: { type: "string", short: "n" },
  },
} as const;

Deno.test("parseCli() parses known options and defaults", () => {
  const out = parseCli(["--force", "-n", "3"], SPEC);
  assert.ok(!("exitCode" in out));
  assert.ok(out.values.force);
  assert.equal(out.values.dir, "/opt");
  assert.equal(out.values.n, "3");
  assert.deepEqual(out.positionals, []);
});

Deno.test("parseCli() returns exit code 2 and prints usage when the command line is bad", async (t) => {
  const cases: [string, string[], RegExp][] = [
    ["unknown option", ["--nope"], /Unknown option '--nope'/],
    ["missing value", ["--dir"], /argument missing/],
    ["unexpected positional", ["extra"], /Unexpected argument 'extra'/],
    ["value for a boolean", ["--force=yes"], /does not take an argument/],
  ];
  for (const [name, argv, re] of cases) {
    await t.step(name, () => {
      let err = "";
      const out = parseCli(argv, SPEC, {
        writeErr(text) {
          err += text;
        },
      });
      assert.ok("exitCode" in out);
      assert.equal(out.exitCode, 2);
      assert.match(out.message, re);
      assert.match(err, re);
      assert.match(err, /usage: tool \[--force\]/);
    });
  }
});

Deno.test("parseCli() accepts positionals when allowed", () => {
  const out = parseCli(["a", "--force", "b"], {
    ...SPEC,
    allowPositionals: true,
  });
  assert.ok(!("exitCode" in out));
  assert.deepEqual(out.positionals, ["a", "b"]);
});
