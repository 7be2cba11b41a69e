/**
 * Restoring a network's host rules (bridge mode: the SNAT, the node's ARP
 * reply, the redirect of fabric ARP replies) that something removed while
 * the network stayed: an operator's `ebtables -D` or a flush. Without them
 * the pods have no egress. ADD and STATUS put them back.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { AzureVnetContext, Invocation } from "./context.ts";
import type { PrefetchedListing } from "./ebtables.ts";
import type { EbtablesRule } from "./ebtables_rules.ts";
import { modeDriver } from "./mode.ts";
import type { NetworkRecord } from "./state.ts";
import { withState } from "./state.ts";

const log = getLogger(["azure-vnet"]);

/**
 * Puts back the network's host rules that are missing. They are looked up
 * in `listing` when the caller took one anyway (the agent keeps its listing
 * while nothing changed the table, so checking costs no exec); only when
 * one is missing is it added, under the state lock and against a listing
 * taken there, so that concurrent calls add it once, and not to a network
 * torn down meanwhile.
 *
 * @param ctx The context (ebtables, lock options).
 * @param spec The call, the network, a listing taken already, and who
 * restores (for the log).
 * @returns The rules added.
 * @throws What listing or adding the rules throws.
 */
export async function restoreHostRules(
  ctx: AzureVnetContext,
  spec: {
    inv: Invocation;
    net: NetworkRecord;
    listing?: PrefetchedListing | undefined;
    by: string;
  },
): Promise<EbtablesRule[]> {
  const { inv, net } = spec;
  const driver = modeDriver(net.mode);
  const gone = await ctx.ebtables.missing(driver.hostRules(net), {
    prefetched: spec.listing,
  });
  if (gone.length === 0) return [];
  return await withState(inv.stateDir, async (s) => {
    const now = s.state.networks[net.name];
    if (now === undefined) return [];
    const added = await ctx.ebtables.ensureAll(driver.hostRules(now));
    if (added.length > 0) {
      log.warn("{by}: network {name} had lost host rules; added {rules}", {
        by: spec.by,
        name: net.name,
        rules: added.map((r) => `${r.chain} ${r.args.join(" ")}`),
      });
    }
    return added;
  }, ctx.lock);
}
