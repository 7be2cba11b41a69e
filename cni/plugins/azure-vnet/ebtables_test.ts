import assert from "node:assert/strict";
import { FakeEbtables as FakeNatTable } from "./_fake_ebtables.ts";
import { Ebtables, EBTABLES_DIRS, type EbtablesOutput } from "./ebtables.ts";
import { listingKey } from "./ebtables_view.ts";
import {
  arpReplyRedirectRule,
  arpReplyRule,
  masterSnatRule,
  parsePodRule,
  parseSpoofRule,
  podDnatRule,
  ruleKey,
  spoofRules,
} from "./ebtables_rules.ts";

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

/**
 * A transactional fake of ebtables-nft: `-L` prints rules the way ebtables
 * 1.8.9 does (recorded from a real run: `-s Unicast` moved first, default
 * `--arpreply-target DROP` omitted); `ebtables-restore --noflush` applies a
 * `*nat ... COMMIT` batch all or nothing.
 */
class NftFake {
  rules: { chain: string; args: string }[] = [];
  lists = 0;
  restores: string[] = [];

  static printed(args: string): string {
    let out = args.replace(" --arpreply-target DROP", "");
    const snat = /^-o (\S+) -s unicast (.*)$/.exec(out);
    if (snat !== null) out = `-s Unicast -o ${snat[1]} ${snat[2]}`;
    return out;
  }

  run = (argv: readonly string[]): Promise<EbtablesOutput> => {
    assert.deepEqual(argv, ["-t", "nat", "-L"]);
    this.lists++;
    const lines = ["Bridge table: nat", ""];
    for (const chain of ["PREROUTING", "OUTPUT", "POSTROUTING"]) {
      const mine = this.rules.filter((r) => r.chain === chain);
      lines.push(
        `Bridge chain: ${chain}, entries: ${mine.length}, policy: ACCEPT`,
        ...mine.map((r) => NftFake.printed(r.args)),
        "",
      );
    }
    return Promise.resolve({ code: 0, stdout: lines.join("\n"), stderr: "" });
  };

  restore = (input: string): Promise<EbtablesOutput> => {
    this.restores.push(input);
    const lines = input.split("\n").filter((l) => l !== "");
    assert.equal(lines[0], "*nat");
    assert.equal(lines.at(-1), "COMMIT");
    const next = [...this.rules];
    for (const [i, line] of lines.slice(1, -1).entries()) {
      const [op, chain = "", ...args] = line.split(" ");
      const key = args.join(" ");
      if (op === "-A") next.push({ chain, args: key });
      else {
        const at = next.findIndex((r) => r.chain === chain && r.args === key);
        if (at < 0) {
          return Promise.resolve({
            code: 1,
            stdout: "",
            stderr: `ebtables-restore: line ${
              i + 2
            } failed: Bad rule (does a matching rule exist in that chain?).`,
          });
        }
        next.splice(at, 1);
      }
    }
    this.rules = next;
    return Promise.resolve({ code: 0, stdout: "", stderr: "" });
  };
}

const MASTER_MAC = "02:0a:0b:0c:0d:0e";
const POD = { ip: "10.0.0.5", mac: "02:00:00:00:00:05" };
const OLD_MAC = "02:00:00:00:00:99";

Deno.test("Ebtables.ensureAll() lists once and adds the missing rules in one transaction", async () => {
  const fake = new NftFake();
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  const host = masterSnatRule("eth0", MASTER_MAC);
  await eb.ensureAll([host]);
  const pod = [arpReplyRule(POD), podDnatRule("eth0", POD)];
  const before = { lists: fake.lists, restores: fake.restores.length };
  const added = await eb.ensureAll([host, ...pod, pod[0] ?? host]);
  assert.deepEqual(added, pod);
  assert.equal(fake.lists - before.lists, 1);
  assert.equal(fake.restores.length - before.restores, 1);
  assert.equal(
    fake.restores.at(-1),
    `*nat\n-A PREROUTING ${pod[0]?.args.join(" ")}\n-A PREROUTING ${
      pod[1]?.args.join(" ")
    }\nCOMMIT\n`,
  );
  // Everything present: one listing, no restore, no duplicate.
  assert.deepEqual(await eb.ensureAll([host, ...pod]), []);
  assert.equal(fake.restores.length - before.restores, 1);
  assert.equal(fake.rules.length, 3);
  assert.deepEqual(await eb.missing([host, ...pod]), []);
});

Deno.test("Ebtables.removeAll() deletes exactly the present rules", async () => {
  const fake = new NftFake();
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  const other = { ip: "10.0.0.6", mac: "02:00:00:00:00:06" };
  const mine = [arpReplyRule(POD), podDnatRule("eth0", POD)];
  const theirs = [arpReplyRule(other), podDnatRule("eth0", other)];
  await eb.ensureAll([...mine, ...theirs]);
  // All present: one transaction, no listing.
  const lists = fake.lists;
  assert.deepEqual(await eb.removeAll(mine), mine);
  assert.equal(fake.lists, lists);
  assert.deepEqual(
    fake.rules.map((r) => r.args),
    theirs.map((r) => r.args.join(" ")),
  );
  // One absent: the failed batch changed nothing; list, then delete the rest.
  await eb.ensureAll(mine.slice(0, 1));
  assert.deepEqual(await eb.removeAll(mine), [mine[0]]);
  assert.equal(fake.rules.length, 2);
  // None present: nothing to do, no error.
  assert.deepEqual(await eb.removeAll(mine), []);
  assert.equal(fake.rules.length, 2);
});

Deno.test("Ebtables batches refuse arguments ebtables-restore would split", async () => {
  const fake = new NftFake();
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  await assert.rejects(
    eb.ensureAll([podDnatRule("eth0 x", POD), arpReplyRule(POD)]),
    { name: "CniError", code: 104, message: /holds a blank/ },
  );
  assert.equal(fake.rules.length, 0);
});

Deno.test("Ebtables.ensureAll() reports a failed transaction with code 104", async () => {
  const fake = new NftFake();
  const eb = new Ebtables({
    run: fake.run,
    restore: () =>
      Promise.resolve({ code: 4, stdout: "", stderr: "injected failure" }),
  });
  await assert.rejects(
    eb.ensureAll([arpReplyRule(POD), podDnatRule("eth0", POD)]),
    (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.equal((err as { code?: number }).code, 104);
      assert.match(
        err.message,
        /^Cannot add ebtables rules: "ebtables -t nat -A PREROUTING/,
      );
      assert.match(
        String((err as { details?: string }).details),
        /injected failure/,
      );
      return true;
    },
  );
});

Deno.test("Ebtables.replaceAll() deletes stale rules and adds ours in one transaction", async () => {
  const fake = new FakeNatTable();
  fake.shortMacs = true;
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  const stale = { ip: POD.ip, mac: "02:00:00:00:00:99" };
  await eb.ensureAll([arpReplyRule(stale), podDnatRule("eth9", stale)]);
  // One in a form of someone else's (another target): deleted as listed.
  const foreign = {
    chain: "PREROUTING" as const,
    args: [
      ...arpReplyRule({ ...stale, mac: "02:00:00:00:00:98" }).args.slice(0, -1),
      "ACCEPT",
    ],
  };
  await fake.run(["-t", "nat", "-A", foreign.chain, ...foreign.args]);
  const before = { lists: fake.lists, restores: fake.restores.length };
  const want = [arpReplyRule(POD), podDnatRule("eth9", POD)];
  const out = await eb.replaceAll(want, {
    obsolete: (listed) => {
      const r = parsePodRule(listed.args);
      return r !== undefined && r.mac !== POD.mac;
    },
  });
  assert.equal(fake.lists - before.lists, 1);
  assert.equal(fake.restores.length - before.restores, 1);
  assert.deepEqual(out.added, want);
  assert.deepEqual(
    out.removed.map(listingKey),
    [arpReplyRule(stale), podDnatRule("eth9", stale), foreign].map(listingKey),
  );
  assert.deepEqual(
    fake.rules.map((r) => r.args),
    want.map((r) => r.args.join(" ")),
  );
  // Nothing stale, nothing missing: one listing, no transaction.
  const again = await eb.replaceAll(want, { obsolete: () => false });
  assert.deepEqual(again, { added: [], removed: [] });
  assert.equal(fake.restores.length - before.restores, 1);
});

Deno.test("Ebtables.replaceAll() appends a stale rule that it must have again after the others, keeping their order", async (t) => {
  for (const oneByOne of [false, true]) {
    await t.step(oneByOne ? "one by one" : "one transaction", async () => {
      const fake = new FakeNatTable();
      const eb = new Ebtables({
        run: fake.run,
        ...(oneByOne ? {} : { restore: fake.restore }),
      });
      const veth = "azv0123456789a";
      const old = spoofRules(veth, { podMac: OLD_MAC, addresses: [POD.ip] });
      await eb.ensureAll([...old, arpReplyRule(POD)]);
      const want = spoofRules(veth, { podMac: POD.mac, addresses: [POD.ip] });
      // Three of the old rules (the probe's ACCEPT, the address DROPs)
      // equal new ones: kept where they were, the ACCEPT would come before
      // the new MAC checks.
      assert.equal(
        want.filter((r) => old.some((o) => listingKey(o) === listingKey(r)))
          .length,
        3,
      );
      const out = await eb.replaceAll(want, {
        obsolete: (listed) => parseSpoofRule(listed.args)?.hostVeth === veth,
      });
      assert.deepEqual(out.added.map(listingKey), want.map(listingKey));
      assert.deepEqual(out.removed.map(listingKey), old.map(listingKey));
      assert.deepEqual(
        fake.rules.map((r) => `${r.chain} ${ruleKey(r.args.split(" "))}`),
        [arpReplyRule(POD), ...want].map(listingKey),
      );
    });
  }
});

Deno.test("Ebtables.replaceAll() uses a prefetched listing, and lists again when the table changed since", async (t) => {
  const obsolete = (listed: { args: readonly string[] }) => {
    const r = parsePodRule(listed.args);
    return r !== undefined && r.mac !== POD.mac;
  };
  const want = [arpReplyRule(POD), podDnatRule("eth9", POD)];
  const stale = { ip: POD.ip, mac: "02:00:00:00:00:99" };
  await t.step("a current listing: no listing of its own", async () => {
    const fake = new FakeNatTable();
    const eb = new Ebtables({ run: fake.run, restore: fake.restore });
    await eb.ensureAll([arpReplyRule(stale), podDnatRule("eth9", stale)]);
    const before = { lists: fake.lists, restores: fake.restores.length };
    const prefetched = eb.prefetch();
    await prefetched.listed;
    assert.equal(fake.lists - before.lists, 1);
    const out = await eb.replaceAll(want, { obsolete, prefetched });
    assert.equal(fake.lists - before.lists, 1);
    assert.equal(fake.restores.length - before.restores, 1);
    assert.deepEqual(out.removed.length, 2);
    assert.deepEqual(
      fake.rules.map((r) => r.args),
      want.map((r) => r.args.join(" ")),
    );
  });
  await t.step(
    "a stale rule gone since the listing: listed again, added",
    async () => {
      const fake = new FakeNatTable();
      const eb = new Ebtables({ run: fake.run, restore: fake.restore });
      await eb.ensureAll([arpReplyRule(stale), podDnatRule("eth9", stale)]);
      const prefetched = eb.prefetch();
      await prefetched.listed;
      // Another process (a DEL of the address's last holder) removes them.
      await eb.removeAll([arpReplyRule(stale), podDnatRule("eth9", stale)]);
      const before = { lists: fake.lists, restores: fake.restores.length };
      const out = await eb.replaceAll(want, { obsolete, prefetched });
      assert.deepEqual(out, { added: want, removed: [] });
      assert.equal(fake.lists - before.lists, 1);
      assert.equal(fake.restores.length - before.restores, 2);
      assert.deepEqual(
        fake.rules.map((r) => r.args),
        want.map((r) => r.args.join(" ")),
      );
    },
  );
});

Deno.test("Ebtables.missing() reads a prefetched listing instead of listing, and lists when it failed", async () => {
  const fake = new FakeNatTable();
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  const other = { ip: "10.0.0.9", mac: "02:00:00:00:00:09" };
  await eb.ensureAll([arpReplyRule(POD)]);
  const prefetched = eb.prefetch();
  await prefetched.listed;
  const before = fake.lists;
  const rules = [arpReplyRule(POD), arpReplyRule(other)];
  assert.deepEqual(await eb.missing(rules, { prefetched }), [
    arpReplyRule(other),
  ]);
  assert.equal(fake.lists, before, "no listing of its own");
  const failed = { listed: Promise.resolve(undefined) };
  assert.deepEqual(await eb.missing(rules, { prefetched: failed }), [
    arpReplyRule(other),
  ]);
  assert.equal(fake.lists - before, 1);
});

Deno.test("Ebtables.prefetch() shares the listing under way, and lists anew once it is done", async () => {
  const fake = new FakeNatTable();
  const eb = new Ebtables({ run: fake.run, restore: fake.restore });
  const stale = { ip: POD.ip, mac: "02:00:00:00:00:99" };
  await eb.ensureAll([arpReplyRule(stale)]);
  const before = fake.lists;
  const [a, b] = [eb.prefetch(), eb.prefetch()];
  const [la, lb] = [await a.listed, await b.listed];
  assert.equal(fake.lists - before, 1);
  assert.equal(la, lb);
  assert.equal(la?.rules.length, 1);
  await eb.removeAll([arpReplyRule(stale)]);
  const after = fake.lists;
  assert.equal((await eb.prefetch().listed)?.rules.length, 0);
  assert.equal(fake.lists - after, 1);
});

/** Three pods whose MACs end in `:05`; rules with another MAC are stale. */
const PODS = [1, 2, 3].map((i) => ({
  ip: `10.0.0.${i}`,
  mac: `02:00:00:00:0${i}:05`,
}));
const [P1, P2, P3] = PODS as [typeof POD, typeof POD, typeof POD];

/** A pod's rules. */
function podWants(p: { ip: string; mac: string }) {
  return [arpReplyRule(p), podDnatRule("eth9", p)];
}

/** `obsolete` of replaceAll(): a pod rule whose MAC is not one of PODS'. */
function notOurMac(listed: { args: readonly string[] }): boolean {
  const r = parsePodRule(listed.args);
  return r !== undefined && !r.mac.endsWith(":05");
}

Deno.test("Ebtables.replaceAll() of concurrent calls: one transaction for those that waited, each alone when it fails", async (t) => {
  await t.step(
    "all succeed: the lead alone, the two waiting together",
    async () => {
      const fake = new FakeNatTable();
      const eb = new Ebtables({ run: fake.run, restore: fake.restore });
      const outs = await Promise.all(
        PODS.map((p) => eb.replaceAll(podWants(p), { obsolete: notOurMac })),
      );
      assert.deepEqual(
        outs,
        PODS.map((p) => ({ added: podWants(p), removed: [] })),
      );
      assert.equal(fake.restores.length, 2);
      assert.deepEqual(
        fake.rules.map((r) => r.args).sort(),
        PODS.flatMap((p) => podWants(p).map((r) => r.args.join(" "))).sort(),
      );
    },
  );
  await t.step(
    "a stale rule gone since its listing: the batch fails, each runs alone, that one lists again",
    async () => {
      const fake = new FakeNatTable();
      // The first transaction waits until let go: the others queue.
      const gate = Promise.withResolvers<void>();
      let calls = 0;
      const restore = async (input: string) => {
        if (calls++ === 0) await gate.promise;
        return await fake.restore(input);
      };
      const eb = new Ebtables({ run: fake.run, restore });
      const stale = { ip: P3.ip, mac: "02:00:00:00:00:99" };
      await fake.restore(
        `*nat\n-A ${formatLine(arpReplyRule(stale))}\nCOMMIT\n`,
      );
      const prefetched = eb.prefetch();
      await prefetched.listed;
      await fake.restore(
        `*nat\n-D ${formatLine(arpReplyRule(stale))}\nCOMMIT\n`,
      );
      const before = fake.restores.length;
      const lead = eb.replaceAll(podWants(P1), { obsolete: notOurMac });
      while (calls === 0) await new Promise((r) => setTimeout(r, 1));
      const others = [
        eb.replaceAll(podWants(P2), { obsolete: notOurMac }),
        eb.replaceAll(podWants(P3), { obsolete: notOurMac, prefetched }),
      ];
      await new Promise((r) => setTimeout(r, 5));
      gate.resolve();
      const outs = await Promise.all([lead, ...others]);
      assert.deepEqual(
        outs,
        PODS.map((p) => ({ added: podWants(p), removed: [] })),
      );
      // The lead; the batch of the two (fails); each alone; P3 again.
      const inputs = fake.restores.slice(before);
      assert.equal(inputs.length, 5);
      assert.ok(inputs[1]?.includes(P2.ip) && inputs[1].includes(P3.ip));
      assert.equal(fake.matching(/02:00:00:00:00:99/).length, 0);
      assert.deepEqual(
        fake.rules.map((r) => r.args).sort(),
        PODS.flatMap((p) => podWants(p).map((r) => r.args.join(" "))).sort(),
      );
    },
  );
});

Deno.test("Ebtables keeps its listing while nf_tables' generation stays, and follows its own transactions (#14)", async (t) => {
  const fake = new FakeNatTable();
  const eb = new Ebtables({
    run: fake.run,
    restore: fake.restore,
    generation: fake.generation,
  });
  const table = () => fake.rules.map((r) => r.args).sort();
  await t.step("one listing for a run of its own changes", async () => {
    await eb.replaceAll(podWants(P1), { obsolete: notOurMac });
    await eb.replaceAll(podWants(P2), { obsolete: notOurMac });
    await eb.removeAll(podWants(P2));
    assert.equal(fake.lists, 1);
    // The view holds P1's rules (nothing to do) and not P2's (added again).
    assert.deepEqual(
      await eb.replaceAll(podWants(P1), { obsolete: notOurMac }),
      {
        added: [],
        removed: [],
      },
    );
    assert.deepEqual(
      await eb.replaceAll(podWants(P2), { obsolete: notOurMac }),
      {
        added: podWants(P2),
        removed: [],
      },
    );
    assert.equal(fake.lists, 1);
    assert.deepEqual(
      await eb.missing([...podWants(P1), ...podWants(P3)]),
      podWants(P3),
    );
    assert.equal(fake.lists, 1);
  });
  await t.step("another process's change: listed again", async () => {
    const stale = { ip: P3.ip, mac: "02:00:00:00:00:99" };
    await fake.run([
      "-t",
      "nat",
      "-A",
      "PREROUTING",
      ...arpReplyRule(stale).args,
    ]);
    const out = await eb.replaceAll(podWants(P3), { obsolete: notOurMac });
    assert.equal(fake.lists, 2);
    assert.deepEqual(out.added, podWants(P3));
    assert.deepEqual(out.removed.map(listingKey), [
      listingKey(arpReplyRule(stale)),
    ]);
    assert.deepEqual(
      table(),
      PODS.flatMap((p) => podWants(p).map((r) => r.args.join(" "))).sort(),
    );
  });
  await t.step(
    "two of its own transactions at once: listed again",
    async () => {
      await Promise.all([
        eb.removeAll(podWants(P1)),
        eb.removeAll(podWants(P2)),
      ]);
      const lists = fake.lists;
      await eb.replaceAll(podWants(P1), { obsolete: notOurMac });
      assert.equal(fake.lists, lists + 1);
      assert.deepEqual(
        table(),
        [...podWants(P1), ...podWants(P3)].map((r) => r.args.join(" ")).sort(),
      );
    },
  );
  await t.step("a failed transaction keeps the view", async () => {
    fake.failAdd = /10\.0\.0\.2/;
    await assert.rejects(eb.replaceAll(podWants(P2), { obsolete: notOurMac }), {
      code: 104,
    });
    fake.failAdd = undefined;
    const lists = fake.lists;
    assert.deepEqual(
      await eb.replaceAll(podWants(P2), { obsolete: notOurMac }),
      {
        added: podWants(P2),
        removed: [],
      },
    );
    assert.equal(fake.lists, lists);
  });
  const blinds = {
    "a legacy ebtables (its transactions leave the generation)": () => 7,
    "a generation that cannot be read": (): number => {
      throw new Error("EPERM");
    },
  };
  for (const [what, generation] of Object.entries(blinds)) {
    await t.step(`${what}: a listing every time`, async () => {
      const other = new FakeNatTable();
      const eb = new Ebtables({
        run: other.run,
        restore: other.restore,
        generation,
      });
      for (const p of PODS) {
        await eb.replaceAll(podWants(p), { obsolete: notOurMac });
      }
      assert.equal(other.lists, PODS.length);
    });
  }
});

/** A rule as an `ebtables-restore` line after the operation. */
function formatLine(rule: { chain: string; args: readonly string[] }): string {
  return [rule.chain, ...rule.args].join(" ");
}

Deno.test("EBTABLES_DIRS are the fixed system directories, in order", () => {
  assert.deepEqual(EBTABLES_DIRS, ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
});

/** Writes a fake `name` into `dir` that logs its argv and env to `log`. */
async function writeLoggingFake(
  dir: string,
  spec: { name: string; log: string; mode?: number },
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/${spec.name}`,
    [
      "#!/bin/sh",
      `{ echo "RUN $0 $*"; env | sed 's/^/ENV /'; } >> '${spec.log}'`,
      "cat > /dev/null",
      "exit 0",
      "",
    ].join("\n"),
    { mode: spec.mode ?? 0o755 },
  );
}

Deno.test("Ebtables runs ebtables from its fixed directories with a clean environment under containerd's env and a scoped --allow-run", async () => {
  // A child deno reproduces the plugin's situation: a parent environment
  // with containerd's LD_LIBRARY_PATH and a PATH whose first directory has
  // fake ebtables binaries, and --allow-run granting exactly the candidate
  // paths (as the launcher does). Deno refuses to pass LD_* to a child
  // unless --allow-run is unrestricted, so this cannot run in-process.
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-ebtables-" });
  try {
    const log = `${tmp}/ran.log`;
    const names = ["ebtables", "ebtables-restore"];
    for (const name of names) {
      await writeLoggingFake(`${tmp}/evil`, { name, log });
      await writeLoggingFake(`${tmp}/noexec`, { name, log, mode: 0o644 });
      await writeLoggingFake(`${tmp}/sbin`, { name, log });
      await writeLoggingFake(`${tmp}/bin`, { name, log });
    }
    const dirs = [
      `${tmp}/missing`,
      `${tmp}/noexec`,
      `${tmp}/sbin`,
      `${tmp}/bin`,
    ];
    const script = `${tmp}/main.ts`;
    await Deno.writeTextFile(
      script,
      [
        `import { Ebtables } from ${
          JSON.stringify(new URL("./ebtables.ts", import.meta.url).href)
        };`,
        `import { arpReplyRedirectRule, masterSnatRule } from ${
          JSON.stringify(new URL("./ebtables_rules.ts", import.meta.url).href)
        };`,
        `const eb = new Ebtables({ searchDirs: ${JSON.stringify(dirs)} });`,
        `await eb.exists(arpReplyRedirectRule("eth0"));`,
        `await eb.ensureAll([masterSnatRule("eth0", "02:0a:0b:0c:0d:0e")]);`,
        "",
      ].join("\n"),
    );
    const grants = dirs.flatMap((d) => names.map((n) => `${d}/${n}`));
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-prompt",
        "--cached-only",
        `--config=${new URL("../../../deno.json", import.meta.url).pathname}`,
        `--allow-run=${grants.join(",")}`,
        script,
      ],
      env: {
        LD_LIBRARY_PATH: "/opt/containerd/lib:",
        PATH: `${tmp}/evil:/usr/local/bin:/usr/bin:/bin`,
        CNITEST_PARENT_ONLY: "1",
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const lines = (await Deno.readTextFile(log)).split("\n");
    const runs = lines.filter((l) => l.startsWith("RUN "));
    const check = arpReplyRedirectRule("eth0");
    assert.deepEqual(runs, [
      `RUN ${tmp}/sbin/ebtables -t nat --check PREROUTING ${
        check.args.join(" ")
      }`,
      `RUN ${tmp}/sbin/ebtables -t nat -L`,
      `RUN ${tmp}/sbin/ebtables-restore --noflush`,
    ]);
    const env = lines.filter((l) => l.startsWith("ENV "));
    assert.ok(
      env.includes("ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
      env.join("\n"),
    );
    assert.deepEqual(
      env.filter((l) => /^ENV (LD_|CNITEST_|PATH=.*evil)/.test(l)),
      [],
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("Ebtables fails with code 104 naming the directories when no ebtables is in them", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "cnitest-ebtables-" });
  try {
    const eb = new Ebtables({ searchDirs: [`${tmp}/a`, `${tmp}/b/`] });
    await assert.rejects(eb.exists(arpReplyRedirectRule("eth0")), (err) => {
      assert.ok(err instanceof Error);
      assert.equal(err.name, "CniError");
      assert.equal((err as { code?: number }).code, 104);
      assert.match(err.message, /Cannot run "ebtables -t nat --check/);
      assert.ok(err.cause instanceof Deno.errors.NotFound);
      assert.equal(
        err.cause.message,
        `Cannot find "ebtables" in ${tmp}/a/ebtables, ${tmp}/b/ebtables (PATH is not searched)`,
      );
      return true;
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
