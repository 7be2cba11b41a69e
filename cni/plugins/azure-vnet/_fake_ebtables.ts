/**
 * An in-memory ebtables `nat` table for unit tests: `--check`, `-A`, `-D`,
 * `-L [CHAIN]` (printed as ebtables 1.8.9 does: `-s Unicast` moved first,
 * the default `--arpreply-target DROP` omitted; optionally MACs without
 * leading zeros, as some ebtables builds print them) and an all-or-nothing
 * `ebtables-restore --noflush`, with nf_tables' generation (one step per
 * change that commits, as the kernel counts).
 *
 * @module
 */
import type { EbtablesOutput } from "./ebtables.ts";
import { ruleKey } from "./ebtables_rules.ts";

/**
 * Where `args` (as added, or as a listing prints them) is in `rules`:
 * ebtables matches a rule by what it means, not by how it is written.
 */
function indexOf(rules: readonly FakeRule[], chain: string, args: string) {
  const key = ruleKey(args.split(" "));
  return rules.findIndex((r) =>
    r.chain === chain && ruleKey(r.args.split(" ")) === key
  );
}

/** One stored rule. */
export interface FakeRule {
  /** The chain. */
  chain: string;
  /** The arguments as added, joined with blanks. */
  args: string;
}

const OK: EbtablesOutput = { code: 0, stdout: "", stderr: "" };
const ABSENT: EbtablesOutput = {
  code: 1,
  stdout: "",
  stderr: "Bad rule (does a matching rule exist in that chain?).",
};

/** The fake table. */
export class FakeEbtables {
  /** The rules, in order. */
  rules: FakeRule[] = [];
  /** `-A` (alone or in a batch) of a rule matching this fails. */
  failAdd: RegExp | undefined;
  /**
   * `-D` (alone or in a batch) of a rule matching this fails with exit 4,
   * as when the xtables lock cannot be had.
   */
  failDel: RegExp | undefined;
  /** Print MACs without leading zeros in listings. */
  shortMacs = false;
  /** Number of listings. */
  lists = 0;
  /** Restore inputs, in order. */
  restores: string[] = [];
  /** The ruleset generation. */
  gen = 1;

  /** The generation reader (`EbtablesOptions.generation`). */
  generation = (): number => this.gen;

  /** The rules of a chain whose arguments match `re`. */
  matching(re: RegExp, chain = "PREROUTING"): string[] {
    return this.rules.filter((r) => r.chain === chain && re.test(r.args)).map(
      (r) => r.args,
    );
  }

  #printed(args: string): string {
    let out = args.replace(" --arpreply-target DROP", "");
    const snat = /^-o (\S+) -s unicast (.*)$/.exec(out);
    if (snat !== null) out = `-s Unicast -o ${snat[1]} ${snat[2]}`;
    if (this.shortMacs) {
      out = out.replace(
        /\b[0-9a-f]{2}(?::[0-9a-f]{2}){5}\b/g,
        (mac) => mac.split(":").map((o) => o.replace(/^0/, "")).join(":"),
      );
    }
    return out;
  }

  #list(chains: readonly string[]): EbtablesOutput {
    this.lists++;
    const lines = ["Bridge table: nat", ""];
    for (const chain of chains) {
      const mine = this.rules.filter((r) => r.chain === chain);
      lines.push(
        `Bridge chain: ${chain}, entries: ${mine.length}, policy: ACCEPT`,
        ...mine.map((r) => this.#printed(r.args)),
        "",
      );
    }
    return { code: 0, stdout: lines.join("\n"), stderr: "" };
  }

  /** The `ebtables` runner. */
  run = (argv: readonly string[]): Promise<EbtablesOutput> => {
    const [, , op, chain = "", ...rest] = argv;
    if (op === "-L") {
      return Promise.resolve(
        this.#list(
          chain === "" ? ["PREROUTING", "OUTPUT", "POSTROUTING"] : [
            chain,
          ],
        ),
      );
    }
    const args = rest.join(" ");
    const i = indexOf(this.rules, chain, args);
    if (op === "--check") return Promise.resolve(i >= 0 ? OK : ABSENT);
    if (op === "-A") {
      if (this.failAdd?.test(args)) {
        return Promise.resolve({ code: 4, stdout: "", stderr: "injected" });
      }
      this.rules.push({ chain, args });
      this.gen++;
      return Promise.resolve(OK);
    }
    if (op === "-D" && this.failDel?.test(args)) {
      return Promise.resolve({ code: 4, stdout: "", stderr: "injected" });
    }
    if (i < 0) return Promise.resolve(ABSENT);
    this.rules.splice(i, 1);
    this.gen++;
    return Promise.resolve(OK);
  };

  /** The `ebtables-restore --noflush` runner. */
  restore = (input: string): Promise<EbtablesOutput> => {
    this.restores.push(input);
    const lines = input.split("\n").filter((l) => l !== "");
    if (lines[0] !== "*nat" || lines.at(-1) !== "COMMIT") {
      return Promise.resolve({ code: 2, stdout: "", stderr: "bad input" });
    }
    const next = [...this.rules];
    for (const [i, line] of lines.slice(1, -1).entries()) {
      const [op, chain = "", ...rest] = line.split(" ");
      const args = rest.join(" ");
      if (op === "-A") {
        if (this.failAdd?.test(args)) {
          return Promise.resolve({
            code: 4,
            stdout: "",
            stderr: `ebtables-restore: line ${i + 2} failed: injected`,
          });
        }
        next.push({ chain, args });
        continue;
      }
      if (op === "-D" && this.failDel?.test(args)) {
        return Promise.resolve({
          code: 4,
          stdout: "",
          stderr: `ebtables-restore: line ${i + 2} failed: injected`,
        });
      }
      const at = indexOf(next, chain, args);
      if (at < 0) {
        return Promise.resolve({
          code: 1,
          stdout: "",
          stderr: `ebtables-restore: line ${i + 2} failed: ${ABSENT.stderr}`,
        });
      }
      next.splice(at, 1);
    }
    this.rules = next;
    this.gen++;
    return Promise.resolve(OK);
  };
}
