/**
 * The rules `azure-vnet` keeps in the ebtables `nat` table, each built and
 * read back here, next to each other: the host rules of a network (egress
 * MAC SNAT, ARP-reply redirect, the ARP reply for the node's primary IP) and
 * the per-pod rules (ARP reply, IPv4 DNAT) that ADD installs for each pod
 * address and GC, DEL and `state repair` read back from `ebtables -t nat
 * -L` lines, and the anti-spoofing rules of each pod's host veth.
 *
 * A listed rule is compared with ours by {@link ruleKey}: option groups in
 * any order, values case-folded, MACs with two digits per octet, the default
 * `--arpreply-target DROP` dropped, because `-L` prints `-s Unicast -o eth0`
 * for `-o eth0 -s unicast` and omits that default. The driver that runs
 * ebtables is `ebtables.ts`.
 *
 * @module
 */
import { kernelMac, looksLikeIpv6, stripPrefix } from "@vnet/address";
import { HOST_VETH_PREFIX } from "./names.ts";

/** The `nat` table chains we use. */
export type EbtablesChain = "PREROUTING" | "POSTROUTING";

/** One rule of the `nat` table: its chain and its match/target arguments. */
export interface EbtablesRule {
  /** The chain. */
  readonly chain: EbtablesChain;
  /** Everything after the chain name, as ebtables takes it. */
  readonly args: readonly string[];
}

/** A MAC and an IPv4 address. */
export interface MacIp {
  /** The IPv4 address, without prefix. */
  readonly ip: string;
  /** The MAC, `aa:bb:cc:dd:ee:ff`. */
  readonly mac: string;
}

/**
 * A MAC as rule keys and parsed rules hold it: the kernel form, lower case
 * with two digits per octet, whether written by us or listed by ebtables
 * (which may print octets without their leading zero, `2:0:0:0:0:5`).
 * Never throws: text that is no MAC is returned lower-cased, so every value
 * of a rule can go through it.
 *
 * @param mac The MAC as written or listed.
 * @returns The canonical MAC, or `mac` lower-cased when it is no MAC.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalMac } from "./ebtables_rules.ts";
 * assert.equal(canonicalMac("2:A:0:0:0:5"), "02:0a:00:00:00:05");
 * assert.equal(canonicalMac("ACCEPT"), "accept");
 * ```
 */
export function canonicalMac(mac: string): string {
  // Most values are no MAC (addresses, targets, names): skip the parse and
  // its exception, which cost the agent seconds of listings in a burst.
  if (!MAC_LIKE.test(mac)) return mac.toLowerCase();
  try {
    return kernelMac(mac, { shortOctets: true });
  } catch {
    return mac.toLowerCase();
  }
}

/** Every form `kernelMac()` may accept, and more: a cheap first filter. */
const MAC_LIKE = /^(?:[0-9a-f]{1,2}(?:[:-][0-9a-f]{1,2}){5}|[0-9a-f]{12})$/i;

/**
 * The comparison key of a rule's match and target arguments: option groups
 * (a flag, its optional `!`, and its values) sorted, values case-folded
 * (MACs with two digits per octet, see {@link canonicalMac}) but for
 * interface names, which ebtables compares as they are (`-i ETH0` is not
 * `-i eth0`), the default `--arpreply-target DROP` left out. A `!` between a flag and its value
 * (`-s ! MAC`, as `-L` lists a negated match) negates the flag as a `!`
 * before it does. Equal keys mean the same rule as `ebtables -L` prints it.
 *
 * @param args The arguments after the chain name (ours or a listed line's,
 * split on blanks).
 * @returns The key.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ruleKey } from "./ebtables_rules.ts";
 * assert.equal(
 *   ruleKey(["-o", "eth0", "-s", "unicast"]),
 *   ruleKey("-s Unicast -o eth0".split(" ")),
 * );
 * ```
 */
export function ruleKey(args: readonly string[]): string {
  const tokens = args.filter((t) => t !== "");
  const groups: string[][] = [];
  let negate = false;
  for (const [i, tok] of tokens.entries()) {
    if (tok === "!") {
      const last = groups[groups.length - 1];
      const next = tokens[i + 1];
      if (
        last?.length === 1 && next !== undefined && !next.startsWith("-")
      ) {
        // `-s ! MAC`, as `-L` lists a negated match: the same as `! -s MAC`.
        last.unshift("!");
      } else {
        negate = true;
      }
      continue;
    }
    if (tok.startsWith("-") || groups.length === 0) {
      groups.push(negate ? ["!", tok] : [tok]);
    } else {
      const group = groups[groups.length - 1];
      const flag = group?.[group[0] === "!" ? 1 : 0] ?? "";
      group?.push(INTERFACE_FLAGS.has(flag) ? tok : canonicalMac(tok));
    }
    negate = false;
  }
  return groups
    .filter((g) => !(g[0] === "--arpreply-target" && g[1] === "drop"))
    .map((g) => g.join(" "))
    .sort()
    .join(" ; ");
}

/** Flags whose value is an interface name (compared as is). */
const INTERFACE_FLAGS = new Set([
  "-i",
  "--in-interface",
  "--in-if",
  "-o",
  "--out-interface",
  "--out-if",
  "--logical-in",
  "--logical-out",
]);

/**
 * Renders a rule as one ebtables command line (for messages and logs).
 *
 * @param op The operation flag (`-A`, `-D`, `--check`).
 * @param rule The rule.
 * @returns `ebtables -t nat -A CHAIN args…`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatRule } from "./ebtables_rules.ts";
 * assert.equal(
 *   formatRule("-A", { chain: "POSTROUTING", args: ["-o", "eth0"] }),
 *   "ebtables -t nat -A POSTROUTING -o eth0",
 * );
 * ```
 */
export function formatRule(op: string, rule: EbtablesRule): string {
  return ["ebtables", "-t", "nat", op, rule.chain, ...rule.args].join(" ");
}

// Host rules: one set per network.

/**
 * Egress MAC SNAT: frames leaving through the master carry its MAC, ARP
 * payloads included (the fabric accepts only the NIC's MAC).
 *
 * @param master The master interface.
 * @param mac The master's MAC.
 * @returns `POSTROUTING -o <master> -s unicast -j snat --to-src <mac> --snat-arp --snat-target ACCEPT`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { masterSnatRule } from "./ebtables_rules.ts";
 * assert.equal(masterSnatRule("eth0", "12:34:56:78:9a:bc").chain, "POSTROUTING");
 * ```
 */
export function masterSnatRule(master: string, mac: string): EbtablesRule {
  return {
    chain: "POSTROUTING",
    args: [
      "-o",
      master,
      "-s",
      "unicast",
      "-j",
      "snat",
      "--to-src",
      mac,
      "--snat-arp",
      "--snat-target",
      "ACCEPT",
    ],
  };
}

/**
 * ARP-reply redirect: ARP replies arriving on the master are broadcast on the
 * bridge, so the pod that asked receives them.
 *
 * @param master The master interface.
 * @returns `PREROUTING -p ARP -i <master> --arp-op Reply -j dnat --to-dst ff:ff:ff:ff:ff:ff --dnat-target ACCEPT`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { arpReplyRedirectRule } from "./ebtables_rules.ts";
 * assert.ok(arpReplyRedirectRule("eth0").args.includes("ff:ff:ff:ff:ff:ff"));
 * ```
 */
export function arpReplyRedirectRule(master: string): EbtablesRule {
  return {
    chain: "PREROUTING",
    args: [
      "-p",
      "ARP",
      "-i",
      master,
      "--arp-op",
      "Reply",
      "-j",
      "dnat",
      "--to-dst",
      "ff:ff:ff:ff:ff:ff",
      "--dnat-target",
      "ACCEPT",
    ],
  };
}

// Per-pod rules: built for ADD, read back from listings.

/** A per-pod rule as listed, its MAC in canonical form. */
export type ListedPodRule =
  | {
    /** An ARP reply: requests for `ip` are answered with `mac`. */
    readonly kind: "arp-reply";
    /** The IPv4 address. */
    readonly ip: string;
    /** The MAC (lower case, two digits per octet). */
    readonly mac: string;
  }
  | {
    /** An IPv4 DNAT: frames for `ip` arriving on `master` go to `mac`. */
    readonly kind: "dnat";
    /** The IPv4 address. */
    readonly ip: string;
    /** The MAC (lower case, two digits per octet). */
    readonly mac: string;
    /** The master the rule matches on (`-i`). */
    readonly master: string;
  };

/** A per-pod DNAT rule as listed: frames for `ip` on `master` go to `mac`. */
export interface PodDnat {
  /** The pod IPv4 address. */
  readonly ip: string;
  /** The pod MAC (lower case, two digits per octet). */
  readonly mac: string;
  /** The master the rule matches on (`-i`). */
  readonly master: string;
}

function valueOf(tokens: readonly string[], flag: string): string | undefined {
  const i = tokens.indexOf(flag);
  return i < 0 ? undefined : tokens[i + 1];
}

/**
 * An address as a listing prints it, without the `/32` it may carry.
 *
 * @param value A listed `--ip-src`/`--ip-dst`/`--arp-ip-dst` value.
 * @returns The address.
 */
export function ipOf(value: string): string {
  // No regex: an ADD runs this on every argument of every listed rule.
  return value.endsWith("/32") ? value.slice(0, -3) : value;
}

/**
 * ARP reply for an address: requests for `ip` are answered with `mac` and
 * dropped. Used for the node's primary IP (master MAC) and each pod IP (pod
 * MAC).
 *
 * @param target The address and the MAC to answer with.
 * @returns `PREROUTING -p ARP --arp-op Request --arp-ip-dst <ip> -j arpreply --arpreply-mac <mac> --arpreply-target DROP`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { arpReplyRule } from "./ebtables_rules.ts";
 * const rule = arpReplyRule({ ip: "10.0.0.4", mac: "12:34:56:78:9a:bc" });
 * assert.ok(rule.args.includes("10.0.0.4"));
 * ```
 */
export function arpReplyRule(target: MacIp): EbtablesRule {
  return {
    chain: "PREROUTING",
    args: [
      "-p",
      "ARP",
      "--arp-op",
      "Request",
      "--arp-ip-dst",
      target.ip,
      "-j",
      "arpreply",
      "--arpreply-mac",
      target.mac,
      "--arpreply-target",
      "DROP",
    ],
  };
}

/**
 * Reads a listed {@link arpReplyRule} (`-p ARP --arp-op Request`, no `-i`,
 * `--arp-ip-dst IP -j arpreply --arpreply-mac MAC`).
 */
function readArpReply(t: readonly string[]): ListedPodRule | undefined {
  if (
    valueOf(t, "-p")?.toLowerCase() !== "arp" ||
    valueOf(t, "-j")?.toLowerCase() !== "arpreply" ||
    valueOf(t, "--arp-op")?.toLowerCase() !== "request" ||
    valueOf(t, "-i") !== undefined
  ) return undefined;
  const ip = valueOf(t, "--arp-ip-dst");
  const mac = valueOf(t, "--arpreply-mac");
  if (ip === undefined || mac === undefined) return undefined;
  return { kind: "arp-reply", ip: ipOf(ip), mac: canonicalMac(mac) };
}

/**
 * Per-pod IPv4 DNAT: frames arriving on the master for the pod IP (which
 * carry the NIC's MAC) get the pod's MAC.
 *
 * @param master The master interface.
 * @param pod The pod IP and MAC.
 * @returns `PREROUTING -p IPv4 -i <master> --ip-dst <ip> -j dnat --to-dst <mac> --dnat-target ACCEPT`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { podDnatRule } from "./ebtables_rules.ts";
 * const rule = podDnatRule("eth0", { ip: "10.0.0.5", mac: "12:34:56:78:9a:bd" });
 * assert.equal(rule.chain, "PREROUTING");
 * ```
 */
export function podDnatRule(master: string, pod: MacIp): EbtablesRule {
  return {
    chain: "PREROUTING",
    args: [
      "-p",
      "IPv4",
      "-i",
      master,
      "--ip-dst",
      pod.ip,
      "-j",
      "dnat",
      "--to-dst",
      pod.mac,
      "--dnat-target",
      "ACCEPT",
    ],
  };
}

/**
 * Reads a listed {@link podDnatRule} (`-p IPv4 -i MASTER --ip-dst IP -j dnat
 * --to-dst MAC`; `--ip-dst` may be listed with `/32`).
 */
function readPodDnat(t: readonly string[]): ListedPodRule | undefined {
  if (
    valueOf(t, "-p")?.toLowerCase() !== "ipv4" ||
    valueOf(t, "-j")?.toLowerCase() !== "dnat"
  ) return undefined;
  const ip = valueOf(t, "--ip-dst");
  const mac = valueOf(t, "--to-dst");
  const master = valueOf(t, "-i");
  if (ip === undefined || mac === undefined || master === undefined) {
    return undefined;
  }
  return { kind: "dnat", ip: ipOf(ip), mac: canonicalMac(mac), master };
}

/**
 * Reads one listed PREROUTING rule as a per-pod rule. The host rules are no
 * per-pod rules, except the ARP reply for the node's primary IP, which has
 * the same shape: callers exclude that address.
 *
 * @param args The listed arguments (a line split on blanks).
 * @returns The pod rule, or undefined for any other rule.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePodRule } from "./ebtables_rules.ts";
 * const line = "-p ARP --arp-op Request --arp-ip-dst 10.0.0.5 -j arpreply --arpreply-mac 2:0:0:0:0:5";
 * assert.deepEqual(parsePodRule(line.split(" ")), {
 *   kind: "arp-reply",
 *   ip: "10.0.0.5",
 *   mac: "02:00:00:00:00:05",
 * });
 * ```
 */
export function parsePodRule(
  args: readonly string[],
): ListedPodRule | undefined {
  const t = args.filter((x) => x !== "");
  if (t.includes("!")) return undefined;
  return readPodDnat(t) ?? readArpReply(t);
}

/**
 * The rule, in our canonical form (as ADD writes it), that a listed pod
 * rule stands for: what `-D` must be given to delete it.
 *
 * @param rule The listed pod rule.
 * @returns The PREROUTING rule.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { podDnatRule, podRuleOf } from "./ebtables_rules.ts";
 * const pod = { ip: "10.0.0.5", mac: "02:00:00:00:00:05" };
 * assert.deepEqual(
 *   podRuleOf({ kind: "dnat", master: "eth0", ...pod }),
 *   podDnatRule("eth0", pod),
 * );
 * ```
 */
export function podRuleOf(rule: ListedPodRule): EbtablesRule {
  return rule.kind === "dnat"
    ? podDnatRule(rule.master, rule)
    : arpReplyRule(rule);
}

// Anti-spoofing rules: per host veth, built for ADD, read back from listings.

/**
 * The anti-spoofing rules of a pod's host veth (`spoofCheck`, README): in
 * PREROUTING, which sees every frame that enters the bridge from the pod,
 * whether the bridge forwards it or delivers it to the node, and before
 * the bridge learns its source MAC, frames from the pod (`-i <veth>`) are
 * dropped when
 *
 * - their source MAC is not the pod's;
 * - they are ARP whose sender MAC is not the pod's, or whose sender IP is
 *   none of the pod's addresses; an ARP probe (a request from 0.0.0.0,
 *   RFC 5227) is let through;
 * - they are IPv4 whose source is none of the pod's addresses.
 *
 * With one IPv4 address (what bridge mode's IPAM gives) each check is one
 * negated rule, and frames that pass go on through PREROUTING (the ARP
 * replies for the pods' addresses). A negation cannot name two addresses,
 * so the ARP probe is let through with `ACCEPT`, as are the addresses of a
 * pod with several: `ACCEPT` ends the `nat` PREROUTING chain for that frame,
 * so such a probe (or ARP of a pod with several addresses) skips the ARP
 * replies of the rules after it and is answered by the pod that has the
 * address instead. IPv6 addresses are skipped (bridge mode is IPv4 only).
 *
 * @param hostVeth The pod's host veth (`-i`).
 * @param pod The pod's MAC and addresses (CIDRs or bare).
 * @returns The rules, in the order they must be appended.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { spoofRules } from "./ebtables_rules.ts";
 * const rules = spoofRules("azv0123456789a", {
 *   podMac: "02:00:00:00:00:05",
 *   addresses: ["10.0.0.5/24"],
 * });
 * assert.deepEqual(rules[0]?.args, [
 *   "-i", "azv0123456789a", "-s", "!", "02:00:00:00:00:05", "-j", "DROP",
 * ]);
 * assert.equal(rules.length, 5);
 * ```
 */
export function spoofRules(
  hostVeth: string,
  pod: { podMac: string; addresses: readonly string[] },
): EbtablesRule[] {
  const mac = pod.podMac;
  const ips = pod.addresses.map(stripPrefix).filter((ip) => !looksLikeIpv6(ip));
  const from = ["-i", hostVeth];
  const arp = ["-p", "ARP", ...from];
  const ipv4 = ["-p", "IPv4", ...from];
  const rules: (readonly string[])[] = [
    [...from, "-s", "!", mac, "-j", "DROP"],
    [...arp, "--arp-mac-src", "!", mac, "-j", "DROP"],
    [...arp, "--arp-op", "Request", "--arp-ip-src", "0.0.0.0", "-j", "ACCEPT"],
  ];
  const [only] = ips;
  if (ips.length === 1 && only !== undefined) {
    rules.push([...arp, "--arp-ip-src", "!", only, "-j", "DROP"]);
    rules.push([...ipv4, "--ip-src", "!", only, "-j", "DROP"]);
  } else {
    for (const ip of ips) {
      rules.push([...arp, "--arp-ip-src", ip, "-j", "ACCEPT"]);
    }
    rules.push([...arp, "-j", "DROP"]);
    for (const ip of ips) rules.push([...ipv4, "--ip-src", ip, "-j", "ACCEPT"]);
    rules.push([...ipv4, "-j", "DROP"]);
  }
  return rules.map((args) => ({ chain: "PREROUTING", args: [...args] }));
}

/** The options a {@link spoofRules} rule may carry, as listed. */
const SPOOF_OPTIONS = new Set([
  "-p",
  "-i",
  "-s",
  "--arp-mac-src",
  "--arp-ip-src",
  "--arp-op",
  "--ip-src",
  "-j",
]);

/** A listed rule of {@link spoofRules}: the veth, and what it names. */
export interface ListedSpoofRule {
  /** The host veth the rule is for (`-i`). */
  readonly hostVeth: string;
  /** The pod MAC it names (`-s`, `--arp-mac-src`), canonical, if any. */
  readonly mac?: string;
  /** The pod address it names (`--ip-src`, `--arp-ip-src`), if any. */
  readonly ip?: string;
}

/**
 * Reads a listed PREROUTING rule as one of {@link spoofRules}: it matches
 * on a host veth of ours (`-i azv…`), drops or accepts, and uses no other
 * option than those rules do. Which pod it was for is the veth's; the MAC
 * or address it names (not the probe's 0.0.0.0) tells whose it may be once
 * the veth is gone.
 *
 * @param args The listed arguments (a line split on blanks).
 * @returns The veth and what the rule names, or undefined for any other
 * rule.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSpoofRule } from "./ebtables_rules.ts";
 * const line = "-p ARP -i azv0123456789a --arp-ip-src ! 10.0.0.5 -j DROP";
 * assert.deepEqual(parseSpoofRule(line.split(" ")), {
 *   hostVeth: "azv0123456789a",
 *   ip: "10.0.0.5",
 * });
 * const dnat = "-p IPv4 -i eth0 --ip-dst 10.0.0.5 -j dnat --to-dst 2:0:0:0:0:5";
 * assert.equal(parseSpoofRule(dnat.split(" ")), undefined);
 * ```
 */
export function parseSpoofRule(
  args: readonly string[],
): ListedSpoofRule | undefined {
  const t = args.filter((x) => x !== "" && x !== "!");
  const hostVeth = valueOf(t, "-i");
  const target = valueOf(t, "-j");
  const proto = valueOf(t, "-p")?.toLowerCase();
  if (
    hostVeth === undefined || !hostVeth.startsWith(HOST_VETH_PREFIX) ||
    (target !== "DROP" && target !== "ACCEPT") ||
    (proto !== undefined && proto !== "arp" && proto !== "ipv4") ||
    t.some((x) => x.startsWith("-") && !SPOOF_OPTIONS.has(x))
  ) return undefined;
  const mac = valueOf(t, "-s") ?? valueOf(t, "--arp-mac-src");
  const ip = valueOf(t, "--ip-src") ?? valueOf(t, "--arp-ip-src");
  return {
    hostVeth,
    ...(mac === undefined ? {} : { mac: canonicalMac(mac) }),
    ...(ip === undefined || ipOf(ip) === "0.0.0.0" ? {} : { ip: ipOf(ip) }),
  };
}

/**
 * Picks the per-pod IPv4 DNAT rules (`-p IPv4 -i M --ip-dst IP -j dnat
 * --to-dst MAC`) out of `ebtables -t nat -L PREROUTING` lines.
 *
 * @param lines The rule lines.
 * @returns One entry per pod DNAT rule, in order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parsePodDnatRules } from "./ebtables_rules.ts";
 * const rules = parsePodDnatRules([
 *   "-p IPv4 -i eth0 --ip-dst 10.0.0.5 -j dnat --to-dst 2:0:0:0:0:5 --dnat-target ACCEPT",
 *   "-p ARP -i eth0 --arp-op Reply -j dnat --to-dst ff:ff:ff:ff:ff:ff --dnat-target ACCEPT",
 * ]);
 * assert.deepEqual(rules, [{ ip: "10.0.0.5", mac: "02:00:00:00:00:05", master: "eth0" }]);
 * ```
 */
export function parsePodDnatRules(lines: readonly string[]): PodDnat[] {
  const out: PodDnat[] = [];
  for (const line of lines) {
    const r = parsePodRule(line.trim().split(/\s+/));
    if (r?.kind === "dnat") {
      out.push({ ip: r.ip, mac: r.mac, master: r.master });
    }
  }
  return out;
}
