import assert from "node:assert/strict";
import {
  GENERATION_RETRY_MS,
  type Listing,
  TableView,
} from "./ebtables_view.ts";
import { podDnatRule } from "./ebtables_rules.ts";

function emptyListing(): Listing {
  return { keys: new Map(), rules: [] };
}

Deno.test("TableView: a failed generation read turns the view off for a while, then the reader is tried again", () => {
  let clock = 0;
  let gen = 5;
  let failing = true;
  let reads = 0;
  const view = new TableView(() => {
    reads++;
    if (failing) throw new Error("EMFILE");
    return gen;
  }, { now: () => clock });

  assert.equal(view.generation(), undefined);
  assert.equal(reads, 1);
  failing = false;
  clock = GENERATION_RETRY_MS - 1;
  assert.equal(view.generation(), undefined, "still off");
  assert.equal(reads, 1, "no read while off");

  clock = GENERATION_RETRY_MS;
  assert.equal(view.generation(), 5);
  const listing = emptyListing();
  view.listed(listing, { before: 5, after: 5 });
  const rule = podDnatRule("eth0", {
    ip: "10.0.0.5",
    mac: "02:00:00:00:00:05",
  });
  gen = 6;
  view.committed([{ op: "-A", rule }], { before: 5, after: 6 });
  assert.equal(view.at(6), listing, "kept and followed again");
  assert.equal(listing.rules.length, 1);

  // A failure drops what was kept: the table may change while it is off.
  failing = true;
  assert.equal(view.generation(), undefined);
  failing = false;
  clock += GENERATION_RETRY_MS;
  assert.equal(view.at(view.generation()), undefined);
});

Deno.test("TableView: a legacy ebtables (a commit leaves the generation) gives the view up for good", () => {
  let clock = 0;
  let reads = 0;
  const view = new TableView(() => (reads++, 7), { now: () => clock });
  const listing = emptyListing();
  view.listed(listing, { before: 7, after: 7 });
  const rule = podDnatRule("eth0", {
    ip: "10.0.0.5",
    mac: "02:00:00:00:00:05",
  });
  view.committed([{ op: "-A", rule }], { before: 7, after: 7 });
  clock += 10 * GENERATION_RETRY_MS;
  assert.equal(view.generation(), undefined);
  assert.equal(reads, 0, "never read again");
  assert.equal(view.at(7), undefined);
});

Deno.test("TableView: a -D that may have taken either of two rules with its key, listed differently, drops the view", () => {
  let gen = 3;
  const view = new TableView(() => gen);
  const rule = podDnatRule("eth0", {
    ip: "10.0.0.5",
    mac: "02:00:00:00:00:05",
  });
  // The same key, listed with its options in another order.
  const other = {
    chain: rule.chain,
    args: [...rule.args.slice(2), ...rule.args.slice(0, 2)],
  };
  const listing: Listing = { keys: new Map(), rules: [] };
  view.listed(listing, { before: 3, after: 3 });
  view.committed([{ op: "-A", rule: other }, { op: "-A", rule }], {
    before: 3,
    after: ++gen,
  });
  assert.equal(view.at(gen), listing);
  view.committed([{ op: "-D", rule }], { before: gen, after: ++gen });
  assert.equal(view.at(gen), undefined, "listed again before the next use");
  // Two listed alike: either may go, and the view follows.
  const same: Listing = { keys: new Map(), rules: [] };
  view.listed(same, { before: gen, after: gen });
  view.committed([{ op: "-A", rule }, { op: "-A", rule }], {
    before: gen,
    after: ++gen,
  });
  view.committed([{ op: "-D", rule }], { before: gen, after: ++gen });
  assert.equal(view.at(gen), same);
  assert.equal(same.rules.length, 1);
});
