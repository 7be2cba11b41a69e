/**
 * The ebtables `nat` table as nf_tables holds it (ebtables-nft keeps it as
 * table `nat` of the `bridge` family): its generation, and the deletion of
 * listed rules by handle, over a socket the process keeps open (#14).
 *
 * Why: nf_tables frees a deleted rule after an RCU grace period, and
 * whoever closes a netfilter socket while such frees are pending waits for
 * them. So an `ebtables-restore` that deletes (every DEL's) takes 13 to
 * 22 ms, against 3 to 4 ms for one that appends, and slows the veth's
 * deletion that runs alongside. A socket that stays open deletes in about
 * 0.2 ms (`NftSocket` of `@vnet/netlink`).
 *
 * A handle is found by position: `ebtables -L` lists a chain's rules in the
 * chain's order, and a dump of the chain's handles comes in the same order.
 * So the view's listing (`ebtables_view.ts`: the table at a generation G)
 * and a dump of handles taken at G line up, and the first listed rule with
 * a rule's key is the one a `-D` of it deletes, as long as every listed
 * rule with that key is listed the same and none carries what the listing
 * does not show (user data, such as an `nft` comment: `ebtables -D` passes
 * over such a rule): such rules are interchangeable, and whichever goes,
 * the rules left list the same, in the same order. The deletion is made for generation G, and the kernel
 * refuses it when anything committed since: then nothing is deleted, and
 * the caller runs `ebtables-restore` as before. Only when the view is the
 * table now, and every line of the transaction deletes a listed rule of
 * PREROUTING or POSTROUTING (at most `NFT_MAX_DELETE` of them), is this
 * path taken.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  NFT_MAX_DELETE,
  type NftRuleInfo,
  type NftRuleRef,
  NftSocket,
} from "@vnet/netlink";
import {
  deletedAt,
  type GenerationReader,
  listingKey,
  listsRulesOf,
  type RestoreOp,
  type TableView,
} from "./ebtables_view.ts";
import type { EbtablesRule } from "./ebtables_rules.ts";

const log = getLogger(["azure-vnet", "ebtables"]);

/** nf_tables' side of the `nat` table (injectable for tests). */
export interface NatTable {
  /** The ruleset generation. */
  readonly generation: GenerationReader;
  /** A chain's rules (handle, user data), in the chain's order. */
  rules(chain: string): NftRuleInfo[];
  /**
   * Deletes the rules in one transaction, only at `generation` (all or
   * none; throws when refused).
   */
  deleteRules(generation: number, rules: readonly NftRuleRef[]): void;
}

const NAT = { family: "bridge", table: "nat" } as const;

/**
 * The `nat` table of the process's own namespace: one socket, opened on
 * first use (in the namespace the process runs ebtables in), and opened
 * again after a failure.
 *
 * @returns The table.
 */
export function ownNatTable(): NatTable {
  let socket: NftSocket | undefined;
  function use<T>(fn: (s: NftSocket) => T): T {
    socket ??= NftSocket.open();
    try {
      return fn(socket);
    } catch (err) {
      // Whatever is left unread on it, the next call starts afresh.
      socket.close();
      socket = undefined;
      throw err;
    }
  }
  return {
    generation: () => use((s) => s.generation()),
    rules: (chain) => use((s) => s.rules({ ...NAT, chain })),
    deleteRules: (generation, rules) =>
      use((s) => s.deleteRules({ ...NAT, generation }, rules)),
  };
}

/** A chain as listed, and as dumped, position by position. */
interface Chain {
  listed: EbtablesRule[];
  rules: NftRuleInfo[];
}

/**
 * The position a `-D` of `rule` takes ({@link deletedAt}) and its handle,
 * when certain and no rule with its key carries user data; undefined
 * otherwise (none, or not for certain which one).
 */
function pick(
  chain: Chain,
  rule: EbtablesRule,
): { index: number; handle: bigint } | undefined {
  const index = deletedAt(chain.listed, rule);
  const first = index === undefined ? undefined : chain.rules[index];
  if (index === undefined || first === undefined) return undefined;
  const key = listingKey(rule);
  if (
    chain.listed.some((r, i) =>
      chain.rules[i]?.userdata === true && listingKey(r) === key
    )
  ) {
    log.debug(
      "A rule with the key carries user data; deleting with ebtables-restore",
    );
    return undefined;
  }
  return { index, handle: first.handle };
}

/**
 * Runs a transaction of `-D` lines by handle, when the view is the table
 * now (see the module notes); the view then follows it.
 *
 * @param ops The transaction.
 * @param table The table's view, and nf_tables' side of it.
 * @returns True when the rules were deleted; false when this path does not
 * apply or the kernel refused (nothing was deleted): run the transaction
 * with `ebtables-restore`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { TableView } from "./ebtables_view.ts";
 * import { deleteByHandle } from "./nat_table.ts";
 * const nat = { generation: () => 1, rules: () => [], deleteRules() {} };
 * const op = { op: "-D" as const, rule: { chain: "PREROUTING" as const, args: ["-j", "ACCEPT"] } };
 * // Nothing listed yet: not this path.
 * const view = new TableView(nat.generation);
 * assert.ok(!deleteByHandle([op], { view, nat }));
 * ```
 */
export function deleteByHandle(
  ops: readonly RestoreOp[],
  table: { view: TableView; nat: NatTable },
): boolean {
  const { view, nat } = table;
  if (
    ops.length === 0 || ops.length > NFT_MAX_DELETE ||
    ops.some((o) => o.op !== "-D" || !listsRulesOf(o.rule.chain))
  ) {
    return false;
  }
  const gen = view.generation();
  const listing = view.at(gen);
  if (gen === undefined || listing === undefined) return false;
  const doomed: NftRuleRef[] = [];
  try {
    const chains = new Map<string, Chain>();
    for (const { rule } of ops) {
      let chain = chains.get(rule.chain);
      if (chain === undefined) {
        const listed = listing.rules.filter((r) => r.chain === rule.chain);
        const rules = nat.rules(rule.chain);
        if (rules.length !== listed.length) {
          log.debug(
            "Chain {chain}: {dumped} rules dumped, {listed} listed; deleting with ebtables-restore",
            { chain: rule.chain, dumped: rules.length, listed: listed.length },
          );
          return false;
        }
        chain = { listed, rules };
        chains.set(rule.chain, chain);
      }
      const at = pick(chain, rule);
      // Absent (`ebtables-restore` fails such a transaction as a whole,
      // and the caller knows what to do then), or not for certain.
      if (at === undefined) return false;
      doomed.push({ chain: rule.chain, handle: at.handle });
      chain.listed.splice(at.index, 1);
      chain.rules.splice(at.index, 1);
    }
    nat.deleteRules(gen, doomed);
  } catch (err) {
    log.debug(
      "Cannot delete by handle ({err}); deleting with ebtables-restore",
      {
        err: String(err),
      },
    );
    return false;
  }
  view.committed(ops, { before: gen, after: view.generation() });
  return true;
}
