import assert from "node:assert/strict";
import { ruleKey, spoofRules } from "./ebtables_rules.ts";
import type { FakeEbtables } from "./_fake_ebtables.ts";
import { forget, pluginArgs, setupPlugin } from "./_plugin_harness.ts";
import { type EndpointRecord, statePath, withState } from "./state.ts";

/** The rules matching on a host veth, as comparison keys. */
function vethRuleKeys(rules: FakeEbtables, veth: string): string[] {
  return rules.matching(new RegExp(`-i ${veth} `)).map((r) =>
    ruleKey(r.split(" "))
  ).sort();
}

async function record(dir: string): Promise<EndpointRecord | undefined> {
  const st = JSON.parse(await Deno.readTextFile(statePath(dir)));
  return st.endpoints["c1/eth0"];
}

Deno.test("cmdAdd() in bridge mode gives the host veth its anti-spoofing rules; CHECK and DEL follow the record", async (t) => {
  await using env = await setupPlugin();
  const { handlers, rules, pod } = env;
  const r = await handlers.cmdAdd(pluginArgs("ADD", "c1"));
  const veth = r.interfaces?.[0]?.name ?? "";
  const podMac = r.interfaces?.[1]?.mac ?? "";
  const want = spoofRules(veth, { podMac, addresses: ["10.0.0.5/24"] });

  await t.step(
    "ADD: the rules, in the same transaction, and the record says so",
    async () => {
      assert.deepEqual(
        vethRuleKeys(rules, veth),
        want.map((x) => ruleKey(x.args)).sort(),
      );
      // One transaction for the host rules, one for the pod's (the veth's
      // included).
      assert.equal(rules.restores.length, 2);
      assert.match(rules.restores[1] ?? "", new RegExp(`-i ${veth} -s ! `));
      assert.ok((await record(env.dir))?.spoofCheck);
    },
  );
  await t.step("ADD: the pod interface ignores router advertisements", () => {
    assert.equal(pod.sysctl("net.ipv6.conf.eth0.accept_ra"), "0");
  });
  await t.step("ADD: hairpin on the host veth, never on the master", () => {
    const links = env.kernel.hostNs.linksByName;
    assert.ok(links.get(veth)?.hairpin);
    assert.equal(links.get("eth0")?.master, "azure0");
    assert.equal(links.get("eth0")?.hairpin, undefined);
  });
  await t.step("CHECK passes, and names a missing rule", async () => {
    const check = handlers.cmdCheck;
    assert.ok(check !== undefined);
    await check(pluginArgs("CHECK", "c1"));
    const gone = want[3]?.args ?? [];
    await rules.run(["-t", "nat", "-D", "PREROUTING", ...gone]);
    await assert.rejects(check(pluginArgs("CHECK", "c1")), {
      name: "CniError",
      code: 106,
      message: new RegExp(
        `ebtables rule missing: PREROUTING -p ARP -i ${veth} --arp-ip-src ! 10\\.0\\.0\\.5 -j DROP`,
      ),
    });
    await rules.run(["-t", "nat", "-A", "PREROUTING", ...gone]);
  });
  await t.step("DEL removes them with the pod's other rules", async () => {
    await handlers.cmdDel(pluginArgs("DEL", "c1"));
    assert.deepEqual(vethRuleKeys(rules, veth), []);
    assert.deepEqual(rules.matching(/10\.0\.0\.5\b/), []);
  });
});

Deno.test("cmdAdd() with spoofCheck false installs no anti-spoofing rule and records none", async () => {
  await using env = await setupPlugin();
  const { handlers, rules } = env;
  const config = { spoofCheck: false };
  const r = await handlers.cmdAdd(pluginArgs("ADD", "c1", { config }));
  const veth = r.interfaces?.[0]?.name ?? "";
  assert.deepEqual(vethRuleKeys(rules, veth), []);
  assert.equal(rules.matching(/-dst 10\.0\.0\.5\b/).length, 2);
  assert.equal((await record(env.dir))?.spoofCheck, undefined);
  await handlers.cmdCheck?.(pluginArgs("CHECK", "c1", { config }));
  await handlers.cmdDel(pluginArgs("DEL", "c1", { config }));
  assert.deepEqual(rules.matching(/10\.0\.0\.5\b/), []);
});

Deno.test("cmdCheck() and cmdDel() neither ask for nor add the anti-spoofing rules of an endpoint recorded without them (earlier version, adopted)", async () => {
  await using env = await setupPlugin();
  const { handlers, rules } = env;
  const r = await handlers.cmdAdd(pluginArgs("ADD", "c1"));
  const veth = r.interfaces?.[0]?.name ?? "";
  // What an earlier version made: the pod rules only, no `spoofCheck`.
  for (const line of rules.matching(new RegExp(`-i ${veth} `))) {
    await rules.run(["-t", "nat", "-D", "PREROUTING", ...line.split(" ")]);
  }
  await withState(env.dir, async (s) => {
    const { spoofCheck: _, ...old } = s.state.endpoints["c1/eth0"] ??
      {} as EndpointRecord;
    s.state.endpoints["c1/eth0"] = old as EndpointRecord;
    await s.save();
  });
  const before = rules.rules.length;
  await handlers.cmdCheck?.(pluginArgs("CHECK", "c1"));
  // A repeated ADD finds it whole: it returns the record, adds nothing.
  assert.deepEqual(await handlers.cmdAdd(pluginArgs("ADD", "c1")), r);
  assert.equal(rules.rules.length, before);
  assert.deepEqual(vethRuleKeys(rules, veth), []);
  const lists = rules.lists;
  await handlers.cmdDel(pluginArgs("DEL", "c1"));
  assert.deepEqual(rules.matching(/10\.0\.0\.5\b/), []);
  // Its one transaction found every rule it named: no listing was needed.
  assert.equal(rules.lists, lists);
});

Deno.test("cmdAdd() replaces, in their order, the anti-spoofing rules an earlier attachment with the same host veth left", async () => {
  await using env = await setupPlugin();
  const { handlers, rules } = env;
  const first = await handlers.cmdAdd(pluginArgs("ADD", "c1"));
  // Killed before its record: the veth and its rules are left; ADD again
  // makes a new veth of the same name, with a new pod MAC.
  await forget(env.dir, "c1/eth0");
  const again = await handlers.cmdAdd(pluginArgs("ADD", "c1"));
  const veth = again.interfaces?.[0]?.name ?? "";
  const podMac = again.interfaces?.[1]?.mac ?? "";
  assert.equal(veth, first.interfaces?.[0]?.name);
  assert.notEqual(podMac, first.interfaces?.[1]?.mac);
  const listed = rules.matching(new RegExp(`-i ${veth} `)).map((r) =>
    ruleKey(r.split(" "))
  );
  // The probe's ACCEPT comes after the MAC checks, as ADD appends them.
  assert.deepEqual(
    listed,
    spoofRules(veth, { podMac, addresses: ["10.0.0.5/24"] }).map((r) =>
      ruleKey(r.args)
    ),
  );
  await handlers.cmdCheck?.(pluginArgs("CHECK", "c1"));
});
