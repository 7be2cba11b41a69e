/**
 * Run by `ebtables_by_handle_test.ts` inside a test netns (`ip netns exec`):
 * drives the real `Ebtables` driver, whose nf_tables socket is this
 * process's namespace's, and prints what it saw as one JSON line.
 *
 * @module
 */
import { Ebtables } from "../../cni/plugins/azure-vnet/ebtables.ts";
import {
  arpReplyRule,
  type EbtablesRule,
  podDnatRule,
} from "../../cni/plugins/azure-vnet/ebtables_rules.ts";
import {
  type NatTable,
  ownNatTable,
} from "../../cni/plugins/azure-vnet/nat_table.ts";

function pod(n: number): { ip: string; mac: string } {
  return { ip: `10.107.0.${n}`, mac: `02:00:00:00:07:0${n}` };
}

function rulesOf(n: number): EbtablesRule[] {
  return [arpReplyRule(pod(n)), podDnatRule("eth0", pod(n))];
}

function ebtables(args: string[]): void {
  new Deno.Command("ebtables", { args: ["-t", "nat", ...args] }).outputSync();
}

const own = ownNatTable();
const seen = { tried: 0, deleted: 0 };
/** Commits a foreign rule just before the next deletion by handle. */
let race = false;
const nat: NatTable = {
  generation: own.generation,
  rules: own.rules,
  deleteRules(gen, rules) {
    seen.tried++;
    if (race) {
      race = false;
      ebtables([
        "-A",
        "POSTROUTING",
        "-p",
        "IPv4",
        "--ip-dst",
        "10.107.9.8",
        "-j",
        "ACCEPT",
      ]);
    }
    own.deleteRules(gen, rules);
    seen.deleted++;
  },
};
const eb = new Ebtables({ nat });
const out: Record<string, unknown> = {};
await eb.ensureAll([1, 2, 3, 4].flatMap(rulesOf));
// A foreign rule at the top shifts every position; the next listing sees it.
ebtables([
  "-I",
  "PREROUTING",
  "1",
  "-p",
  "IPv4",
  "--ip-dst",
  "10.107.9.9",
  "-j",
  "ACCEPT",
]);
// A twin of pod 2's DNAT rule on another interface (its name differs only
// in case, which ebtables tells apart): not pod 2's, it stays.
ebtables(["-I", "PREROUTING", "2", ...podDnatRule("ETH0", pod(2)).args]);
await eb.prefetch().listed;
out.removed2 = (await eb.removeAll(rulesOf(2))).length;
out.afterShift = { ...seen };
// Another process commits between the handles and the deletion.
race = true;
out.removed3 = (await eb.removeAll(rulesOf(3))).length;
out.afterRace = { ...seen };
Deno.stdout.writeSync(new TextEncoder().encode(`${JSON.stringify(out)}\n`));
