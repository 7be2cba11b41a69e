import assert from "node:assert/strict";
import { NFT_MAX_DELETE, type NftRuleRef } from "@vnet/netlink";
import {
  type Listing,
  listingKey,
  type RestoreOp,
  TableView,
} from "./ebtables_view.ts";
import {
  arpReplyRule,
  type EbtablesRule,
  podDnatRule,
} from "./ebtables_rules.ts";
import { deleteByHandle, type NatTable } from "./nat_table.ts";

function pod(n: number): { ip: string; mac: string } {
  return { ip: `10.0.0.${n}`, mac: `02:00:00:00:00:0${n}` };
}

/**
 * A table of PREROUTING rules with handles (100 + position), a view of it
 * proven by one own transaction, and a fake nf_tables side that records
 * deletions and applies them.
 */
function fixture(
  rules: EbtablesRule[] = [1, 2, 3].map((n) => podDnatRule("eth0", pod(n))),
  options: { userdata?: number[] } = {},
) {
  let gen = 10;
  const chain = rules.map((rule, i) => ({
    rule,
    handle: BigInt(100 + i),
    userdata: options.userdata?.includes(i) ?? false,
  }));
  const deleted: NftRuleRef[][] = [];
  const nat: NatTable & { refuse?: Error } = {
    generation: () => gen,
    rules: (name) =>
      name === "PREROUTING"
        ? chain.map(({ handle, userdata }) => ({ handle, userdata }))
        : [],
    deleteRules(at, doomed) {
      if (nat.refuse !== undefined) throw nat.refuse;
      assert.equal(at, gen, "made for the generation now");
      deleted.push([...doomed]);
      for (const d of doomed) {
        chain.splice(chain.findIndex((r) => r.handle === d.handle), 1);
      }
      gen++;
    },
  };
  const view = new TableView(nat.generation);
  const listing: Listing = { keys: new Map(), rules: [] };
  view.listed(listing, { before: gen, after: gen });
  // One own transaction proves the view (and appends the rules).
  const ops = rules.map((rule) => ({ op: "-A" as const, rule }));
  view.committed(ops, { before: gen, after: ++gen });
  return {
    view,
    nat,
    deleted,
    listing,
    /** The keys of the table now, in order. */
    table: () => chain.map((r) => listingKey(r.rule)),
    bump: () => gen++,
  };
}

function del(rule: RestoreOp["rule"]): RestoreOp {
  return { op: "-D", rule };
}

Deno.test("deleteByHandle deletes listed rules by their position's handle, in one transaction, and the view follows", () => {
  const f = fixture();
  const [r1, r2, r3] = [1, 2, 3].map((n) => podDnatRule("eth0", pod(n)));
  assert.ok(r1 && r2 && r3);
  assert.ok(deleteByHandle([del(r3), del(r1)], f));
  assert.deepEqual(f.deleted, [[
    { chain: "PREROUTING", handle: 102n },
    { chain: "PREROUTING", handle: 100n },
  ]]);
  assert.deepEqual(f.table(), [listingKey(r2)]);
  // The view is the table at the new generation.
  assert.deepEqual(
    f.view.at(f.nat.generation())?.rules.map(listingKey),
    f.table(),
  );
  // And the next deletion works on it.
  assert.ok(deleteByHandle([del(r2)], f));
  assert.deepEqual(f.table(), []);
});

Deno.test("deleteByHandle takes the first of rules with the same key, and positions follow earlier lines of the transaction", () => {
  const twice = podDnatRule("eth0", pod(2));
  const f = fixture([
    podDnatRule("eth0", pod(1)),
    twice,
    podDnatRule("eth0", pod(3)),
    twice,
  ]);
  assert.ok(deleteByHandle([del(twice), del(twice)], f));
  assert.deepEqual(f.deleted, [[
    { chain: "PREROUTING", handle: 101n },
    { chain: "PREROUTING", handle: 103n },
  ]]);
});

Deno.test("deleteByHandle leaves to ebtables-restore what it cannot do exactly: nothing is deleted", () => {
  const r1 = podDnatRule("eth0", pod(1));
  const absent = podDnatRule("eth0", pod(9));
  const cases: [string, (f: ReturnType<typeof fixture>) => RestoreOp[]][] = [
    ["an append", () => [{ op: "-A", rule: absent }]],
    ["a mixed transaction", () => [del(r1), { op: "-A", rule: absent }]],
    ["a rule that is not listed", () => [del(r1), del(absent)]],
    ["a table changed since the listing", (f) => {
      f.bump();
      return [del(r1)];
    }],
    ["a dump that does not match the listing", (f) => {
      f.nat.rules = () => [{ handle: 100n, userdata: false }];
      return [del(r1)];
    }],
    ["a refusal by the kernel", (f) => {
      f.nat.refuse = new Error("EBUSY");
      return [del(r1)];
    }],
    ["a dump that fails", (f) => {
      f.nat.rules = () => {
        throw new Error("EMFILE");
      };
      return [del(r1)];
    }],
    ["an empty transaction", () => []],
  ];
  for (const [what, ops] of cases) {
    const f = fixture();
    const before = f.table();
    assert.ok(!deleteByHandle(ops(f), f), what);
    assert.deepEqual(f.deleted, [], what);
    assert.deepEqual(f.table(), before, what);
  }
  // A view that no own transaction proved keeps nothing.
  const nat: NatTable = {
    generation: () => 3,
    rules: () => [{ handle: 100n, userdata: false }],
    deleteRules: () => assert.fail("not this path"),
  };
  const view = new TableView(nat.generation);
  view.listed({ keys: new Map(), rules: [arpReplyRule(pod(1))] }, {
    before: 3,
    after: 3,
  });
  assert.ok(!deleteByHandle([del(arpReplyRule(pod(1)))], { view, nat }));
});

Deno.test("deleteByHandle leaves it to ebtables-restore when rules with the key differ in what the listing shows or hides", () => {
  const ours = podDnatRule("eth0", pod(2));
  // Listed in another form (the options in another order): same key,
  // and ebtables may tell them apart.
  const reordered: EbtablesRule = {
    chain: "PREROUTING",
    args: [...ours.args.slice(2), ...ours.args.slice(0, 2)],
  };
  assert.equal(listingKey(reordered), listingKey(ours));
  const f = fixture([podDnatRule("eth0", pod(1)), reordered, ours]);
  assert.ok(!deleteByHandle([del(ours)], f));
  assert.deepEqual(f.deleted, []);
  // One with user data (an nft comment) lists like ours: `ebtables -D`
  // passes over it, so which one goes is not certain.
  const g = fixture([podDnatRule("eth0", pod(1)), ours, ours], {
    userdata: [1],
  });
  assert.ok(!deleteByHandle([del(ours)], g));
  assert.deepEqual(g.deleted, []);
  // User data on a rule with another key is no matter.
  const h = fixture([podDnatRule("eth0", pod(1)), ours], { userdata: [0] });
  assert.ok(deleteByHandle([del(ours)], h));
  assert.deepEqual(h.deleted, [[{ chain: "PREROUTING", handle: 101n }]]);
});

Deno.test("deleteByHandle takes at most NFT_MAX_DELETE lines", () => {
  const many = Array.from(
    { length: NFT_MAX_DELETE + 1 },
    (_, i) =>
      podDnatRule("eth0", {
        ip: `10.1.${i >> 8}.${i & 255}`,
        mac: "02:00:00:00:01:01",
      }),
  );
  const f = fixture(many);
  assert.ok(!deleteByHandle(many.map(del), f));
  assert.ok(deleteByHandle(many.slice(1).map(del), f));
  assert.equal(f.table().length, 1);
});
