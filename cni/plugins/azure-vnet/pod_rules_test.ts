import assert from "node:assert/strict";
import {
  arpReplyRedirectRule,
  arpReplyRule,
  masterSnatRule,
  podDnatRule,
} from "./ebtables.ts";
import { parsePodRule, podRuleOf } from "./pod_rules.ts";

const POD = { ip: "10.0.0.5", mac: "02:0a:00:00:00:05" };

Deno.test("parsePodRule() reads pod rules as listed and rebuilds ours", async (t) => {
  const cases = [
    {
      name: "ARP reply, ebtables 1.8.9 listing",
      line:
        "-p ARP --arp-op Request --arp-ip-dst 10.0.0.5 -j arpreply --arpreply-mac 02:0a:00:00:00:05",
      rule: arpReplyRule(POD),
    },
    {
      name: "ARP reply, MAC without leading zeros",
      line:
        "-p ARP --arp-op Request --arp-ip-dst 10.0.0.5 -j arpreply --arpreply-mac 2:a:0:0:0:5",
      rule: arpReplyRule(POD),
    },
    {
      name: "IPv4 DNAT with /32 and short MAC",
      line:
        "-p IPv4 -i eth0 --ip-dst 10.0.0.5/32 -j dnat --to-dst 2:a:0:0:0:5 --dnat-target ACCEPT",
      rule: podDnatRule("eth0", POD),
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const r = parsePodRule(c.line.split(" "));
      assert.ok(r !== undefined);
      assert.deepEqual(podRuleOf(r), c.rule);
    });
  }
});

Deno.test("parsePodRule() ignores host rules and negated matches", () => {
  for (
    const rule of [
      masterSnatRule("eth0", POD.mac),
      arpReplyRedirectRule("eth0"),
      {
        chain: "PREROUTING",
        args: ["-p", "IPv4", "-i", "eth0", "--ip-dst", "!", "10.0.0.5"],
      },
    ]
  ) {
    assert.equal(parsePodRule(rule.args), undefined, rule.args.join(" "));
  }
});
