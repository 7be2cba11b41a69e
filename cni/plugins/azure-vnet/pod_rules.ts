/**
 * Reading per-pod ebtables rules back from `ebtables -t nat -L` lines: the
 * ARP reply (`-p ARP --arp-op Request --arp-ip-dst IP -j arpreply
 * --arpreply-mac MAC`) and the IPv4 DNAT (`-p IPv4 -i MASTER --ip-dst IP -j
 * dnat --to-dst MAC`) that ADD installs for each pod address.
 *
 * @module
 */
import {
  arpReplyRule,
  canonicalMac,
  type EbtablesRule,
  podDnatRule,
} from "./ebtables.ts";

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

function ipOf(value: string): string {
  return value.replace(/\/32$/, "");
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
 * import { parsePodRule } from "./pod_rules.ts";
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
  const proto = valueOf(t, "-p")?.toLowerCase();
  const target = valueOf(t, "-j")?.toLowerCase();
  if (proto === "ipv4" && target === "dnat") {
    const ip = valueOf(t, "--ip-dst");
    const mac = valueOf(t, "--to-dst");
    const master = valueOf(t, "-i");
    if (ip === undefined || mac === undefined || master === undefined) {
      return undefined;
    }
    return { kind: "dnat", ip: ipOf(ip), mac: canonicalMac(mac), master };
  }
  if (
    proto === "arp" && target === "arpreply" &&
    valueOf(t, "--arp-op")?.toLowerCase() === "request" &&
    valueOf(t, "-i") === undefined
  ) {
    const ip = valueOf(t, "--arp-ip-dst");
    const mac = valueOf(t, "--arpreply-mac");
    if (ip === undefined || mac === undefined) return undefined;
    return { kind: "arp-reply", ip: ipOf(ip), mac: canonicalMac(mac) };
  }
  return undefined;
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
 * import { podDnatRule } from "./ebtables.ts";
 * import { podRuleOf } from "./pod_rules.ts";
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
 * import { parsePodDnatRules } from "./pod_rules.ts";
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
