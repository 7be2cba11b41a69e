import { assert } from "../_support/assert.ts";
import { natRules, run, TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import {
  NFT_MAX_DELETE,
  NftGenerationMoved,
  NftSocket,
  withNetns,
} from "@vnet/netlink";

/** Runs `ebtables-restore --noflush` with `input` in `ns`; its exit code. */
async function restore(ns: string, input: string): Promise<number> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, "ebtables-restore", "--noflush"],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  return (await child.status).code;
}

Deno.test("NftSocket reads one namespace's nf_tables generation: one step per committed transaction, none for listings or failures", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  await using other = await TestNetns.create();
  using gen = withNetns(ns.path, () => NftSocket.open());
  using elsewhere = withNetns(other.path, () => NftSocket.open());
  const elsewhereBefore = elsewhere.generation();
  const g0 = gen.generation();
  await run("ip", ["netns", "exec", ns.name, "ebtables", "-t", "nat", "-L"]);
  assert.equal(gen.generation(), g0, "a listing commits nothing");
  const rule = "PREROUTING -p IPv4 --ip-dst 10.106.0.5 -j ACCEPT";
  assert.equal(
    await restore(ns.name, `*nat\n-A ${rule}\n-A ${rule}\nCOMMIT\n`),
    0,
  );
  const g1 = gen.generation();
  assert.equal(g1, g0 + 1, "one transaction, one step");
  const absent = "PREROUTING -p IPv4 --ip-dst 10.106.0.9 -j ACCEPT";
  assert.notEqual(
    await restore(ns.name, `*nat\n-D ${rule}\n-D ${absent}\nCOMMIT\n`),
    0,
  );
  assert.equal(gen.generation(), g1, "a failed transaction changes nothing");
  await run("ip", [
    "netns",
    "exec",
    ns.name,
    "ebtables",
    "-t",
    "nat",
    "-D",
    ...rule.split(" "),
  ]);
  assert.equal(gen.generation(), g1 + 1);
  assert.equal(
    elsewhere.generation(),
    elsewhereBefore,
    "another namespace's table is its own",
  );
  gen.close();
  assert.throws(() => gen.generation(), TypeError);
});

Deno.test("NftSocket lists a chain's rule handles in listing order and deletes by handle only at the generation it was given", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  const rule = (ip: string) => `-p IPv4 --ip-dst ${ip} -j ACCEPT`;
  const ips = ["10.106.1.1", "10.106.1.2", "10.106.1.3", "10.106.1.4"];
  assert.equal(
    await restore(
      ns.name,
      `*nat\n${
        ips.map((ip) => `-A PREROUTING ${rule(ip)}\n`).join("")
      }-A POSTROUTING ${rule("10.106.2.1")}\nCOMMIT\n`,
    ),
    0,
  );
  using nft = withNetns(ns.path, () => NftSocket.open());
  const nat = { family: "bridge", table: "nat" } as const;
  const listed = nft.rules({ ...nat, chain: "PREROUTING" });
  const handles = listed.map((r) => r.handle);
  assert.equal(handles.length, 4);
  assert.ok(listed.every((r) => !r.userdata), "ebtables keeps no user data");
  assert.equal(nft.rules({ ...nat, chain: "POSTROUTING" }).length, 1);
  assert.equal(nft.rules({ ...nat, chain: "OUTPUT" }).length, 0);
  // A dump filtered on a chain that does not exist is empty.
  assert.deepEqual(nft.rules({ ...nat, chain: "NOSUCHCHAIN" }), []);
  // The second and fourth, in one transaction.
  const g0 = nft.generation();
  nft.deleteRules({ ...nat, generation: g0 }, [
    { chain: "PREROUTING", handle: handles[1] ?? 0n },
    { chain: "PREROUTING", handle: handles[3] ?? 0n },
  ]);
  assert.equal(nft.generation(), g0 + 1, "one transaction, one step");
  assert.deepEqual(await natRules(ns.name, "PREROUTING"), [
    rule(ips[0] ?? ""),
    rule(ips[2] ?? ""),
  ]);
  // Made for an older generation: refused, and nothing is deleted.
  assert.throws(
    () =>
      nft.deleteRules({ ...nat, generation: g0 }, [
        { chain: "PREROUTING", handle: handles[0] ?? 0n },
      ]),
    NftGenerationMoved,
  );
  // A handle that is gone fails the whole transaction.
  const g1 = nft.generation();
  assert.throws(
    () =>
      nft.deleteRules({ ...nat, generation: g1 }, [
        { chain: "PREROUTING", handle: handles[0] ?? 0n },
        { chain: "PREROUTING", handle: handles[1] ?? 0n },
      ]),
    /refused to delete rules/,
  );
  assert.equal(nft.generation(), g1);
  assert.equal((await natRules(ns.name, "PREROUTING")).length, 2);
  assert.deepEqual(await natRules(ns.name, "POSTROUTING"), [
    rule("10.106.2.1"),
  ]);
  // The socket still answers after the refusals.
  assert.deepEqual(
    nft.rules({ ...nat, chain: "PREROUTING" }).map((r) => r.handle),
    [handles[0], handles[2]],
  );
});

Deno.test("NftSocket deletes up to NFT_MAX_DELETE rules in one transaction, and refuses more", async () => {
  requireRoot();
  await using ns = await TestNetns.create();
  const count = NFT_MAX_DELETE + 4;
  const lines = Array.from(
    { length: count },
    (_, i) =>
      `-A PREROUTING -p IPv4 --ip-dst 10.108.${i >> 8}.${i & 255} -j ACCEPT\n`,
  );
  assert.equal(await restore(ns.name, `*nat\n${lines.join("")}COMMIT\n`), 0);
  using nft = withNetns(ns.path, () => NftSocket.open());
  const nat = { family: "bridge", table: "nat" } as const;
  const all = nft.rules({ ...nat, chain: "PREROUTING" }).map((r) => ({
    chain: "PREROUTING",
    handle: r.handle,
  }));
  assert.equal(all.length, count);
  const gen = nft.generation();
  assert.throws(
    () => nft.deleteRules({ ...nat, generation: gen }, all.slice(0, -3)),
    RangeError,
  );
  nft.deleteRules({ ...nat, generation: gen }, all.slice(4));
  assert.equal(nft.generation(), gen + 1);
  assert.equal((await natRules(ns.name, "PREROUTING")).length, 4);
});
