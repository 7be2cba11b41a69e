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
 * a rule's key is the one a `-D` of it deletes. Rules with the same key
 * are interchangeable: whichever goes, the keys left are the same, in the
 * same order. The deletion is made for generation G, and the kernel
 * refuses it when anything committed since: then nothing is deleted, and
 * the caller runs `ebtables-restore` as before. Only when the view is the
 * table now, and every line of the transaction deletes a listed rule of
 * PREROUTING or POSTROUTING, is this path taken.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type NftRuleRef, NftSocket } from "@vnet/netlink";
import {
  type GenerationReader,
  listingKey,
  listsRulesOf,
  type RestoreOp,
  type TableView,
} from "./ebtables_view.ts";

const log = getLogger(["azure-vnet", "ebtables"]);

/** nf_tables' side of the `nat` table (injectable for tests). */
export interface NatTable {
  /** The ruleset generation. */
  readonly generation: GenerationReader;
  /** The handles of a chain's rules, in the chain's order. */
  handles(chain: string): bigint[];
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
    handles: (chain) => use((s) => s.ruleHandles({ ...NAT, chain })),
    deleteRules: (generation, rules) =>
      use((s) => s.deleteRules({ ...NAT, generation }, rules)),
  };
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
 * const nat = { generation: () => 1, handles: () => [], deleteRules() {} };
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
    ops.length === 0 ||
    ops.some((o) => o.op !== "-D" || !listsRulesOf(o.rule.chain))
  ) {
    return false;
  }
  const gen = view.generation();
  const listing = view.at(gen);
  if (gen === undefined || listing === undefined) return false;
  const doomed: NftRuleRef[] = [];
  try {
    const chains = new Map<string, { keys: string[]; handles: bigint[] }>();
    for (const { rule } of ops) {
      let chain = chains.get(rule.chain);
      if (chain === undefined) {
        const keys = listing.rules.filter((r) => r.chain === rule.chain)
          .map(listingKey);
        const handles = nat.handles(rule.chain);
        if (handles.length !== keys.length) {
          log.debug(
            "Chain {chain}: {handles} handles for {listed} listed rules; deleting with ebtables-restore",
            { chain: rule.chain, handles: handles.length, listed: keys.length },
          );
          return false;
        }
        chain = { keys, handles };
        chains.set(rule.chain, chain);
      }
      const at = chain.keys.indexOf(listingKey(rule));
      const handle = chain.handles[at];
      // Absent: `ebtables-restore` fails such a transaction as a whole,
      // and the caller knows what to do then.
      if (handle === undefined) return false;
      doomed.push({ chain: rule.chain, handle });
      chain.keys.splice(at, 1);
      chain.handles.splice(at, 1);
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
