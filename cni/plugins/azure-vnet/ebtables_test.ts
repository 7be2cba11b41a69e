import assert from "node:assert/strict";
import {
  arpReplyRedirectRule,
  arpReplyRule,
  Ebtables,
  type EbtablesOutput,
  masterSnatRule,
  podDnatRule,
} from "./ebtables.ts";

/** A fake ebtables holding rules in memory, recording every argv. */
class FakeEbtables {
  rules: string[] = [];
  calls: string[][] = [];
  failWith: EbtablesOutput | undefined;

  run = (argv: readonly string[]): Promise<EbtablesOutput> => {
    this.calls.push([...argv]);
    if (this.failWith !== undefined) return Promise.resolve(this.failWith);
    const [, , op, ...rest] = argv;
    const key = rest.join(" ");
    const i = this.rules.indexOf(key);
    const absent = {
      code: 1,
      stdout: "",
      stderr: "ebtables: Bad rule (does a matching rule exist in that chain?)",
    };
    const ok = { code: 0, stdout: "", stderr: "" };
    if (op === "--check") return Promise.resolve(i >= 0 ? ok : absent);
    if (op === "-A") {
      this.rules.push(key);
      return Promise.resolve(ok);
    }
    if (op === "-D") {
      if (i < 0) return Promise.resolve(absent);
      this.rules.splice(i, 1);
      return Promise.resolve(ok);
    }
    return Promise.resolve({ code: 2, stdout: "", stderr: "bad op" });
  };
}

Deno.test("Ebtables.ensure() adds a rule only when absent", async () => {
  const fake = new FakeEbtables();
  const eb = new Ebtables({ run: fake.run });
  const rule = masterSnatRule("eth0", "12:34:56:78:9a:bc");
  assert.ok(await eb.ensure(rule));
  assert.ok(!(await eb.ensure(rule)));
  assert.equal(fake.rules.length, 1);
  assert.deepEqual(fake.calls[0]?.slice(0, 4), [
    "-t",
    "nat",
    "--check",
    "POSTROUTING",
  ]);
  assert.ok(await eb.exists(rule));
});

Deno.test("Ebtables.remove() deletes exactly and tolerates absence", async () => {
  const fake = new FakeEbtables();
  const eb = new Ebtables({ run: fake.run });
  const a = podDnatRule("eth0", { ip: "10.0.0.5", mac: "12:34:56:78:9a:bd" });
  const b = podDnatRule("eth0", { ip: "10.0.0.6", mac: "12:34:56:78:9a:be" });
  await eb.ensure(a);
  await eb.ensure(b);
  assert.ok(await eb.remove(a));
  assert.ok(!(await eb.remove(a)));
  assert.equal(fake.rules.length, 1);
  assert.ok(await eb.exists(b));
});

Deno.test("Ebtables reports stderr with code 104 when ebtables fails", async () => {
  const fake = new FakeEbtables();
  fake.failWith = { code: 2, stdout: "", stderr: "Chain 'x' does not exist" };
  const eb = new Ebtables({ run: fake.run });
  await assert.rejects(eb.ensure(arpReplyRedirectRule("eth0")), {
    name: "CniError",
    code: 104,
    message: /Cannot check ebtables rule: "ebtables -t nat --check PREROUTING/,
  });
  await assert.rejects(
    eb.remove(arpReplyRule({ ip: "10.0.0.4", mac: "12:34:56:78:9a:bc" })),
    (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal(err.name, "CniError");
      assert.match(String((err as { details?: string }).details), /Chain 'x'/);
      return true;
    },
  );
});

Deno.test("Ebtables wraps a runner that throws with code 104", async () => {
  const eb = new Ebtables({
    run: () => Promise.reject(new Deno.errors.NotFound("no ebtables")),
  });
  await assert.rejects(eb.exists(arpReplyRedirectRule("eth0")), {
    name: "CniError",
    code: 104,
    message: /Cannot run/,
  });
});
