/**
 * The `nat` table as the last listing saw it, kept while nf_tables says
 * nothing changed it (#14).
 *
 * An ADD must know the table: which of its rules are there already, and
 * which stale rules name its addresses. Listing it is an exec whose cost
 * grows with the pods on the node (2 ms with 10 pods, 9 ms with 250). But
 * every committed nf_tables transaction in a namespace raises its ruleset
 * generation by one, and a failed one or a listing leaves it
 * (`NftSocket` of `@vnet/netlink`, through `nat_table.ts`). So a
 * long-lived process (the agent) lists once, and afterwards:
 *
 * - a listing taken while the generation read G before and after is the
 *   table at G, and is reused while the generation still reads G;
 * - after one of its own transactions, when the generation went from the
 *   view's G to G + 1 (so that nothing else committed in between), it
 *   applies the transaction to the view, which is then the table at G + 1;
 * - anything else (another process's rule, `iptables-nft` in the namespace,
 *   two of its own transactions at once) leaves the view at an old
 *   generation, and the next use lists again.
 *
 * The view is trusted only once one of the process's own transactions has
 * been seen to raise the generation by one: a legacy (not nf_tables)
 * `ebtables` changes the table without touching the generation, so a view
 * kept under it could miss another process's rules. When a committed
 * transaction leaves the generation as it was, the view is given up for
 * good and every use lists, as before #14. A generation that cannot be
 * read (a socket refused under load) turns the view off for a while
 * ({@link GENERATION_RETRY_MS}); then the reader is tried again.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type EbtablesRule, ruleKey } from "./ebtables_rules.ts";

const log = getLogger(["azure-vnet", "ebtables"]);

/** One listing of the table. */
export interface Listing {
  /** `CHAIN key` ({@link ruleKey}) to count. */
  readonly keys: Map<string, number>;
  /** The rules of PREROUTING and POSTROUTING as listed. */
  readonly rules: EbtablesRule[];
}

/** One line of an `ebtables-restore` transaction. */
export interface RestoreOp {
  /** Append or delete. */
  readonly op: "-A" | "-D";
  /** The rule. */
  readonly rule: EbtablesRule;
}

/** Reads the generation of the namespace ebtables runs in. */
export type GenerationReader = () => number;

/**
 * The rule's `CHAIN key`, as {@link Listing.keys} counts it.
 *
 * @param rule The rule.
 * @returns `CHAIN key`.
 */
export function listingKey(rule: EbtablesRule): string {
  let key = KEYS.get(rule);
  if (key === undefined) {
    key = `${rule.chain} ${ruleKey(rule.args)}`;
    KEYS.set(rule, key);
  }
  return key;
}

/** Each rule object's key, made once (a `-D` looks through the listing). */
const KEYS = new WeakMap<EbtablesRule, string>();

/**
 * Whether a listing keeps this chain's rules (the chains pod rules live in).
 *
 * @param chain The chain.
 * @returns True for PREROUTING and POSTROUTING.
 */
export function listsRulesOf(
  chain: string,
): chain is "PREROUTING" | "POSTROUTING" {
  return chain === "PREROUTING" || chain === "POSTROUTING";
}

/** How long a failed generation read turns the view off. */
export const GENERATION_RETRY_MS = 30_000;

/** Options of {@link TableView}. */
export interface TableViewOptions {
  /** The clock, in milliseconds (default `performance.now`). */
  readonly now?: () => number;
}

/** The last listing and the generation it describes; see the module notes. */
export class TableView {
  #read: GenerationReader | undefined;
  #kept: { gen: number; listing: Listing } | undefined;
  /** Whether an own transaction was seen to raise the generation by one. */
  #proven = false;
  #now: () => number;
  /** Until when (clock time) a failed read keeps the view off. */
  #offUntil = -Infinity;

  /**
   * Creates an empty view.
   *
   * @param read The generation reader; without one, nothing is kept.
   * @param options The clock.
   */
  constructor(
    read: GenerationReader | undefined,
    options: TableViewOptions = {},
  ) {
    this.#read = read;
    this.#now = options.now ?? (() => performance.now());
  }

  /**
   * The generation now; undefined without a reader, or when it fails (then
   * the view is dropped and off for {@link GENERATION_RETRY_MS}, and every
   * use lists until a read works again).
   *
   * @returns The generation.
   */
  generation(): number | undefined {
    if (this.#read === undefined || this.#now() < this.#offUntil) {
      return undefined;
    }
    try {
      return this.#read();
    } catch (err) {
      log.warn(
        "Cannot read the nf_tables generation ({err}): listing every time for {seconds} s",
        { err: String(err), seconds: GENERATION_RETRY_MS / 1000 },
      );
      this.#kept = undefined;
      this.#offUntil = this.#now() + GENERATION_RETRY_MS;
      return undefined;
    }
  }

  #giveUp(why: string): void {
    log.warn("Keeping no ebtables listing: {why}; listing every time", { why });
    this.#read = undefined;
    this.#kept = undefined;
  }

  /**
   * The listing kept for generation `gen`, if there is one.
   *
   * @param gen The generation now.
   * @returns The listing, or undefined.
   */
  at(gen: number | undefined): Listing | undefined {
    return this.#proven && gen !== undefined && this.#kept?.gen === gen
      ? this.#kept.listing
      : undefined;
  }

  /**
   * Keeps a fresh listing when the generation did not move while it was
   * taken.
   *
   * @param listing The listing.
   * @param gens The generation before and after it was taken.
   */
  listed(
    listing: Listing,
    gens: { before: number | undefined; after: number | undefined },
  ): void {
    if (gens.before !== undefined && gens.before === gens.after) {
      this.#kept = { gen: gens.before, listing };
    }
  }

  /**
   * After a committed transaction of `ops`: applies it to the view when the
   * generation went from the view's to the next (nothing else committed).
   *
   * @param ops The transaction's lines.
   * @param gens The generation before and after the transaction ran.
   */
  committed(
    ops: readonly RestoreOp[],
    gens: { before: number | undefined; after: number | undefined },
  ): void {
    const { before, after } = gens;
    if (before === undefined || after === undefined || ops.length === 0) {
      return;
    }
    if (after === before) {
      this.#giveUp(
        "a committed ebtables transaction left nf_tables' generation as it was (a legacy ebtables?)",
      );
      return;
    }
    // The kernel's counter skips 0 when it wraps: a wrap only lists again.
    if (after !== before + 1) return;
    this.#proven = true;
    const kept = this.#kept;
    if (kept === undefined || kept.gen !== before) return;
    for (const { op, rule } of ops) {
      if (!apply(kept.listing, op, rule)) {
        // Which rule went is not known for certain: list again.
        this.#kept = undefined;
        return;
      }
    }
    kept.gen = after;
  }
}

/**
 * Where a `-D` of `rule` takes a rule of `rules`, when that is certain: the
 * first listed in its chain with its key (as ebtables deletes the first
 * match), -1 when none has its key, undefined when several have it and
 * they are not all listed alike (ebtables compares more than the key).
 *
 * @param rules Rules as listed, in order.
 * @param rule The rule a `-D` names.
 * @returns The index, -1, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { deletedAt } from "./ebtables_view.ts";
 * const a = { chain: "PREROUTING" as const, args: ["-p", "IPv4", "-j", "ACCEPT"] };
 * const b = { chain: "PREROUTING" as const, args: ["-j", "ACCEPT", "-p", "IPv4"] };
 * assert.equal(deletedAt([a, a], a), 0);
 * assert.equal(deletedAt([a, b], a), undefined);
 * assert.equal(deletedAt([], a), -1);
 * ```
 */
export function deletedAt(
  rules: readonly EbtablesRule[],
  rule: EbtablesRule,
): number | undefined {
  const key = listingKey(rule);
  const same = (r: EbtablesRule) =>
    r.chain === rule.chain && listingKey(r) === key;
  const at = rules.findIndex(same);
  const text = rules[at]?.args.join(" ");
  if (text === undefined) return -1;
  return rules.some((r) => same(r) && r.args.join(" ") !== text)
    ? undefined
    : at;
}

/**
 * One line of a committed transaction, applied to a listing; false when
 * the listing cannot tell which rule a `-D` took ({@link deletedAt}).
 */
function apply(listing: Listing, op: "-A" | "-D", rule: EbtablesRule): boolean {
  const key = listingKey(rule);
  const count = listing.keys.get(key) ?? 0;
  if (op === "-A") {
    listing.keys.set(key, count + 1);
    if (listsRulesOf(rule.chain)) listing.rules.push(rule);
    return true;
  }
  if (count <= 1) listing.keys.delete(key);
  else listing.keys.set(key, count - 1);
  if (!listsRulesOf(rule.chain)) return true;
  const at = deletedAt(listing.rules, rule);
  if (at === undefined) return false;
  if (at >= 0) listing.rules.splice(at, 1);
  return true;
}
