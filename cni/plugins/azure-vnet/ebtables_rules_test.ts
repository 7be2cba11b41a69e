import assert from "node:assert/strict";
import fc from "fast-check";
import { kernelMac } from "@vnet/address";
import {
  arpReplyRedirectRule,
  arpReplyRule,
  canonicalMac,
  masterSnatRule,
  parsePodRule,
  parseSpoofRule,
  podDnatRule,
  podRuleOf,
  ruleKey,
  spoofRules,
} from "./ebtables_rules.ts";

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

const LISTED_MASTER_MAC = "02:0a:0b:0c:0d:0e";
const LISTED_POD = { ip: "10.0.0.5", mac: "02:00:00:00:00:05" };

Deno.test("ruleKey() matches each of our rules with its ebtables 1.8.9 listing", () => {
  // Lines printed by `ebtables -t nat -L` (ebtables 1.8.9, nf_tables) for
  // rules added with exactly our arguments.
  const listed = new Map([
    [
      masterSnatRule("eth9", LISTED_MASTER_MAC),
      `-s Unicast -o eth9 -j snat --to-src ${LISTED_MASTER_MAC} --snat-arp --snat-target ACCEPT`,
    ],
    [
      arpReplyRule(LISTED_POD),
      `-p ARP --arp-op Request --arp-ip-dst 10.0.0.5 -j arpreply --arpreply-mac ${LISTED_POD.mac}`,
    ],
    [
      arpReplyRedirectRule("eth9"),
      "-p ARP -i eth9 --arp-op Reply -j dnat --to-dst ff:ff:ff:ff:ff:ff --dnat-target ACCEPT",
    ],
    [
      podDnatRule("eth9", LISTED_POD),
      `-p IPv4 -i eth9 --ip-dst 10.0.0.5 -j dnat --to-dst ${LISTED_POD.mac} --dnat-target ACCEPT`,
    ],
  ]);
  const keys = new Set<string>();
  for (const [rule, line] of listed) {
    assert.equal(ruleKey(rule.args), ruleKey(line.split(" ")), line);
    keys.add(ruleKey(rule.args));
  }
  assert.equal(keys.size, 4);
  // A different address, MAC or interface is a different rule.
  const other = podDnatRule("eth9", { ip: "10.0.0.50", mac: LISTED_POD.mac });
  assert.notEqual(
    ruleKey(other.args),
    ruleKey(podDnatRule("eth9", LISTED_POD).args),
  );
  assert.notEqual(
    ruleKey(["!", "-i", "eth9"]),
    ruleKey(["-i", "eth9"]),
  );
});

Deno.test("canonicalMac() gives kernelMac() of a MAC in any form and lower-cases anything else", () => {
  function reference(text: string): string {
    try {
      return kernelMac(text, { shortOctets: true });
    } catch {
      return text.toLowerCase();
    }
  }
  const hex = fc.constantFrom(..."0123456789abcdefABCDEF:-xG. ".split(""));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ unit: hex, maxLength: 20 }),
        fc.constantFrom(
          "2:A:0:0:0:5",
          "02-0A-00-00-00-05",
          "020a00000005",
          "02:0a-00:00:00:05",
          "ACCEPT",
          "10.0.0.5",
          "--arpreply-mac",
          "",
        ),
      ),
      (t) => assert.equal(canonicalMac(t), reference(t), t),
    ),
    { numRuns: 3000 },
  );
});

const VETH = "azv0123456789a";

Deno.test("spoofRules() match their ebtables 1.8.9 listing, and parseSpoofRule() reads it", async (t) => {
  // Lines printed by `ebtables -t nat -L` (ebtables 1.8.9, nf_tables) for
  // rules added with exactly these arguments.
  const cases = [
    {
      name: "one address: negated matches",
      addresses: ["10.0.0.5/24"],
      listed: [
        `-s ! 02:00:00:00:00:05 -i ${VETH} -j DROP`,
        `-p ARP -i ${VETH} --arp-mac-src ! 02:00:00:00:00:05 -j DROP`,
        `-p ARP -i ${VETH} --arp-op Request --arp-ip-src 0.0.0.0 -j ACCEPT`,
        `-p ARP -i ${VETH} --arp-ip-src ! 10.0.0.5 -j DROP`,
        `-p IPv4 -i ${VETH} --ip-src ! 10.0.0.5 -j DROP`,
      ],
    },
    {
      name: "two addresses: accepted, then dropped",
      addresses: ["10.0.0.5/24", "10.0.0.6/24", "fd00::5/64"],
      listed: [
        `-s ! 02:00:00:00:00:05 -i ${VETH} -j DROP`,
        `-p ARP -i ${VETH} --arp-mac-src ! 02:00:00:00:00:05 -j DROP`,
        `-p ARP -i ${VETH} --arp-op Request --arp-ip-src 0.0.0.0 -j ACCEPT`,
        `-p ARP -i ${VETH} --arp-ip-src 10.0.0.5 -j ACCEPT`,
        `-p ARP -i ${VETH} --arp-ip-src 10.0.0.6 -j ACCEPT`,
        `-p ARP -i ${VETH} -j DROP`,
        `-p IPv4 -i ${VETH} --ip-src 10.0.0.5 -j ACCEPT`,
        `-p IPv4 -i ${VETH} --ip-src 10.0.0.6 -j ACCEPT`,
        `-p IPv4 -i ${VETH} -j DROP`,
      ],
    },
  ];
  for (const c of cases) {
    await t.step(c.name, () => {
      const rules = spoofRules(VETH, {
        podMac: "02:00:00:00:00:05",
        addresses: c.addresses,
      });
      assert.equal(rules.length, c.listed.length);
      for (const [i, rule] of rules.entries()) {
        const line = c.listed[i] ?? "";
        assert.equal(rule.chain, "PREROUTING");
        assert.equal(ruleKey(rule.args), ruleKey(line.split(" ")), line);
        const read = parseSpoofRule(line.split(" "));
        assert.equal(read?.hostVeth, VETH, line);
        assert.equal(parseSpoofRule(rule.args)?.hostVeth, VETH);
      }
      assert.equal(
        new Set(rules.map((r) => ruleKey(r.args))).size,
        rules.length,
      );
    });
  }
});

Deno.test("ruleKey() compares interface names as they are, as ebtables does", () => {
  const ours = podDnatRule("eth0", {
    ip: "10.0.0.5",
    mac: "02:00:00:00:00:05",
  });
  const upper = ours.args.map((a) => a === "eth0" ? "ETH0" : a);
  assert.notEqual(ruleKey(upper), ruleKey(ours.args));
  assert.notEqual(ruleKey(["!", "-i", "Eth0"]), ruleKey(["!", "-i", "eth0"]));
  assert.notEqual(ruleKey(["-o", "ETH0"]), ruleKey(["-o", "eth0"]));
  // Other values still fold.
  assert.equal(ruleKey(["-p", "IPv4"]), ruleKey(["-p", "ipv4"]));
});

Deno.test("ruleKey() tells a negated match from a plain one, in either spelling", () => {
  const mac = "02:00:00:00:00:05";
  const negated = ruleKey(["-i", VETH, "-s", "!", mac, "-j", "DROP"]);
  assert.equal(negated, ruleKey(["!", "-s", mac, "-i", VETH, "-j", "DROP"]));
  assert.equal(
    negated,
    ruleKey(`-s ! 2:0:0:0:0:5 -i ${VETH} -j DROP`.split(" ")),
  );
  assert.notEqual(negated, ruleKey(["-i", VETH, "-s", mac, "-j", "DROP"]));
  // A `!` before a flag negates that flag, not the value before it.
  assert.notEqual(
    ruleKey(["--snat-arp", "!", "-s", mac]),
    ruleKey(["!", "--snat-arp", "-s", mac]),
  );
});

Deno.test("parseSpoofRule() names the MAC or address a rule carries, and ignores other rules", () => {
  assert.deepEqual(
    parseSpoofRule(`-s ! 2:0:0:0:0:5 -i ${VETH} -j DROP`.split(" ")),
    { hostVeth: VETH, mac: "02:00:00:00:00:05" },
  );
  assert.deepEqual(
    parseSpoofRule(
      `-p ARP -i ${VETH} --arp-op Request --arp-ip-src 0.0.0.0 -j ACCEPT`
        .split(" "),
    ),
    { hostVeth: VETH },
  );
  assert.deepEqual(
    parseSpoofRule(
      `-p IPv4 -i ${VETH} --ip-src 10.0.0.6/32 -j ACCEPT`.split(" "),
    ),
    { hostVeth: VETH, ip: "10.0.0.6" },
  );
  for (
    const line of [
      // Our other rules.
      "-p IPv4 -i eth0 --ip-dst 10.0.0.5 -j dnat --to-dst 2:0:0:0:0:5 --dnat-target ACCEPT",
      "-p ARP --arp-op Request --arp-ip-dst 10.0.0.5 -j arpreply --arpreply-mac 2:0:0:0:0:5",
      // Someone else's veth, target or match.
      "-i veth1 -s ! 2:0:0:0:0:5 -j DROP",
      `-i ${VETH} -s ! 2:0:0:0:0:5 -j CONTINUE`,
      `-i ${VETH} -j mark --mark-set 1 --mark-target CONTINUE`,
      `-p IPv6 -i ${VETH} -j DROP`,
      `-p ARP -i ${VETH} --arp-gratuitous -j DROP`,
    ]
  ) {
    assert.equal(parseSpoofRule(line.split(" ")), undefined, line);
  }
});
