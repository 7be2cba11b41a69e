/**
 * ebtables (Debian's `ebtables-nft`) driven through `Deno.Command` with
 * argument arrays, never a shell.
 *
 * Presence is tested with `ebtables -t nat --check CHAIN <rule>` (exit 0:
 * present, 1: absent; verified with ebtables 1.8.9 (nf_tables)). Note that
 * `-C` means "change counters" in ebtables, not "check". A rule is appended
 * only when absent, and deleted with `-D` using the very same arguments, so
 * no duplicates are created and only our rules are removed. A stale rule
 * for a pod's new address ({@link Ebtables.replaceAll}) is deleted as the
 * listing prints it, whatever its form: ebtables-restore takes the listed
 * form back (verified with ebtables 1.8.9, nf_tables, a foreign
 * `--arpreply-target ACCEPT` included).
 *
 * Batches (one ADD or DEL touches several rules, and every exec costs about
 * 10 ms): {@link Ebtables.ensureAll} lists the table once (`ebtables -t nat
 * -L`) and appends all missing rules in one `ebtables-restore --noflush`
 * transaction; {@link Ebtables.removeAll} first tries to delete all rules in
 * one transaction and, when one is absent (the transaction then changes
 * nothing), lists and deletes exactly the present ones. Verified with
 * ebtables 1.8.9 (nf_tables): restore input `*nat`, `-A`/`-D CHAIN args`
 * lines, `COMMIT`; a `-D` of an absent rule fails the whole batch ("line N
 * failed: Bad rule (does a matching rule exist in that chain?)").
 *
 * A long-lived process lists the table once: the listing is kept, and
 * follows the process's own transactions, while nf_tables' ruleset
 * generation says nothing else changed the table (`ebtables_view.ts`, #14).
 *
 * A listed rule is compared with ours by {@link ruleKey}. The rules
 * themselves, how each is written and read back, are in `ebtables_rules.ts`;
 * this module only runs the programs.
 *
 * The programs are run by absolute path from the first of
 * {@link EBTABLES_DIRS} that has them, never through the inherited `PATH`,
 * and with nothing but a fixed `PATH` in their environment: whatever
 * a runtime passes (containerd's `LD_LIBRARY_PATH=/opt/containerd/lib:` and
 * `/opt/containerd/bin` first on `PATH`, `LD_PRELOAD`, megabytes of
 * variables) neither reaches ebtables nor trips Deno's refusal to spawn a
 * child with `LD_*` variables under a scoped `--allow-run`.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CniError, PLUGIN_CODES } from "@vnet/cni";
import {
  type EbtablesChain,
  type EbtablesRule,
  formatRule,
  ruleKey,
} from "./ebtables_rules.ts";
import {
  type GenerationReader,
  type Listing,
  listingKey,
  listsRulesOf,
  type RestoreOp,
  TableView,
} from "./ebtables_view.ts";
import { deleteByHandle, type NatTable, ownNatTable } from "./nat_table.ts";

const log = getLogger(["azure-vnet", "ebtables"]);

/** The outcome of one ebtables run. */
export interface EbtablesOutput {
  /** The exit code. */
  readonly code: number;
  /** stdout text. */
  readonly stdout: string;
  /** stderr text. */
  readonly stderr: string;
}

/** Runs ebtables with the given argv (injectable for tests). */
export type EbtablesRunner = (argv: readonly string[]) => Promise<
  EbtablesOutput
>;

/**
 * Runs `ebtables-restore --noflush` with `input` on stdin (injectable for
 * tests).
 */
export type EbtablesRestoreRunner = (input: string) => Promise<
  EbtablesOutput
>;

/**
 * The directories `ebtables` and `ebtables-restore` are run from, in this
 * order; the first that has the program wins. The inherited `PATH` is never
 * searched: a runtime's `PATH` (containerd 1.6 puts `/opt/containerd/bin`
 * first) must not choose the program that edits the node's firewall. The
 * launcher and `deno compile` grant `--allow-run` on exactly these paths.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { EBTABLES_DIRS } from "./ebtables.ts";
 * assert.equal(EBTABLES_DIRS[0], "/usr/sbin");
 * assert.ok(EBTABLES_DIRS.every((d) => d.startsWith("/")));
 * ```
 */
export const EBTABLES_DIRS: readonly string[] = [
  "/usr/sbin",
  "/sbin",
  "/usr/bin",
  "/bin",
];

/** Options of {@link Ebtables}. */
export interface EbtablesOptions {
  /**
   * The binary: a name looked up in `searchDirs` (default `ebtables`), or
   * a path (anything with a `/`), run as is.
   */
  binary?: string;
  /** The restore binary, like `binary` (default `ebtables-restore`). */
  restoreBinary?: string;
  /**
   * The directories searched, in order, for a binary given by name
   * (default {@link EBTABLES_DIRS}; never `PATH`).
   */
  searchDirs?: readonly string[];
  /** Replaces the process runner (tests). */
  run?: EbtablesRunner;
  /**
   * Replaces the restore runner (tests). When `run` is replaced and this is
   * not, batches fall back to one `--check`/`-A`/`-D` per rule.
   */
  restore?: EbtablesRestoreRunner;
  /**
   * Reads nf_tables' generation in the namespace ebtables runs in, so that
   * a listing is reused while nothing changed the table (`TableView`,
   * #14). Default: a socket of this process's namespace, unless `run` is
   * replaced; `null`: list every time.
   */
  generation?: GenerationReader | null;
  /**
   * nf_tables' side of the table, for deleting listed rules by handle
   * (`nat_table.ts`). Default: the socket of this process's namespace that
   * reads the generation, unless `run` or `generation` is replaced; `null`:
   * every deletion runs `ebtables-restore`.
   */
  nat?: NatTable | null;
}

/** A listed line: its arguments and its `CHAIN key`. */
interface ListedLine {
  readonly key: string;
  readonly args: readonly string[];
}

/**
 * A listing of the `nat` table started ahead of its use by
 * {@link Ebtables.prefetch}.
 */
export interface PrefetchedListing {
  /** The listing; undefined when it failed (it is then taken again). */
  readonly listed: Promise<Listing | undefined>;
}

/**
 * The whole environment of an ebtables child: nothing is inherited. A
 * runtime's variables never reach it, so `LD_LIBRARY_PATH`/`LD_PRELOAD`
 * cannot pick its libraries, a huge environment costs nothing, and Deno,
 * which refuses to pass `LD_*`/`DYLD_*` to a child under a scoped
 * `--allow-run`, has nothing to refuse.
 */
const CHILD_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
};

/** Spawn errors that mean "not in this directory": ENOENT, EACCES, ENOTDIR. */
function isMissingProgram(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound ||
    err instanceof Deno.errors.PermissionDenied ||
    err instanceof Deno.errors.NotADirectory;
}

/**
 * One program, run from the first of fixed directories that has it, with
 * {@link CHILD_ENV} only. The first successful spawn fixes the path for the
 * process. Existence is learned by spawning (a missing file fails the spawn
 * at once), so no read permission on the directories is needed.
 */
class FixedProgram {
  #name: string;
  #candidates: readonly string[];
  #found: string | undefined;

  constructor(binary: string, dirs: readonly string[]) {
    this.#name = binary;
    this.#candidates = binary.includes("/")
      ? [binary]
      : dirs.map((d) => `${d.replace(/\/+$/, "")}/${binary}`);
  }

  spawn(args: readonly string[], stdin: "null" | "piped"): Deno.ChildProcess {
    if (this.#found !== undefined) return spawnClean(this.#found, args, stdin);
    for (const path of this.#candidates) {
      try {
        const child = spawnClean(path, args, stdin);
        this.#found = path;
        return child;
      } catch (err) {
        if (!isMissingProgram(err)) throw err;
      }
    }
    throw new Deno.errors.NotFound(
      `Cannot find "${this.#name}" in ${
        this.#candidates.join(", ")
      } (PATH is not searched)`,
    );
  }
}

function spawnClean(
  path: string,
  args: readonly string[],
  stdin: "null" | "piped",
): Deno.ChildProcess {
  return new Deno.Command(path, {
    args: [...args],
    stdin,
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: CHILD_ENV,
  }).spawn();
}

async function collect(child: Deno.ChildProcess): Promise<EbtablesOutput> {
  const out = await child.output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr).trim(),
  };
}

function commandRunner(program: FixedProgram): EbtablesRunner {
  return async function run(argv) {
    return await collect(program.spawn(argv, "null"));
  };
}

function restoreRunner(program: FixedProgram): EbtablesRestoreRunner {
  return async function restore(input) {
    const child = program.spawn(["--noflush"], "piped");
    const w = child.stdin.getWriter();
    try {
      await w.write(new TextEncoder().encode(input));
    } finally {
      await w.close().catch(() => {});
    }
    return await collect(child);
  };
}

/** Refuses tokens `ebtables-restore` would split or treat as a comment. */
function restoreLine(op: "-A" | "-D", rule: EbtablesRule): string {
  for (const tok of [rule.chain, ...rule.args]) {
    if (tok === "" || /[\s"'#\\]/.test(tok)) {
      throw new CniError(
        PLUGIN_CODES.ebtablesFailed,
        `Cannot batch ebtables rule "${formatRule(op, rule)}": argument ${
          JSON.stringify(tok)
        } is empty or holds a blank, quote or #`,
      );
    }
  }
  return [op, rule.chain, ...rule.args].join(" ");
}

/** Transaction lines, each checked ({@link restoreLine}) as it is made. */
function restoreOps(
  op: "-A" | "-D",
  rules: readonly EbtablesRule[],
): RestoreOp[] {
  return rules.map((rule) => {
    restoreLine(op, rule);
    return { op, rule };
  });
}

/** The `ebtables-restore` input of one `nat` transaction of `ops`. */
function transaction(ops: readonly RestoreOp[]): string {
  return ["*nat", ...ops.map((o) => restoreLine(o.op, o.rule)), "COMMIT", ""]
    .join("\n");
}

/** Options of {@link Ebtables.replaceAll}. */
export interface ReplaceOptions {
  /**
   * True for a listed rule (chain and arguments as listed) that is stale:
   * it is deleted as listed, so that a rule in another form than ours (a
   * foreign target or option) goes too instead of failing the transaction.
   * A stale rule that is also one of the rules to have is appended again,
   * after the others already there: rules whose order matters (a host
   * veth's anti-spoofing rules, which end with `ACCEPT`s and `DROP`s) keep
   * it when an earlier set of them is replaced.
   */
  readonly obsolete: (listed: EbtablesRule) => boolean;
  /** A listing taken earlier ({@link Ebtables.prefetch}). */
  readonly prefetched?: PrefetchedListing;
}

/** A transaction waiting for the next group commit. */
interface QueuedCommit {
  readonly ops: readonly RestoreOp[];
  readonly resolve: (out: EbtablesOutput) => void;
  readonly reject: (err: unknown) => void;
}

function dedupe(rules: readonly EbtablesRule[]): EbtablesRule[] {
  const seen = new Set<string>();
  return rules.filter((r) => {
    const k = listingKey(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * The ebtables `nat` table, through the `ebtables` binary.
 *
 * Requires CAP_NET_ADMIN in the current network namespace and the
 * `ebtables` binary (nft backend).
 *
 * @tags allow-run
 *
 * @example Usage
 * ```ts ignore
 * import { Ebtables } from "./ebtables.ts";
 * import { podDnatRule } from "./ebtables_rules.ts";
 * const eb = new Ebtables();
 * await eb.ensure(podDnatRule("eth0", { ip: "10.0.0.5", mac: "12:34:56:78:9a:bc" }));
 * ```
 */
export class Ebtables {
  #run: EbtablesRunner;
  #restore: EbtablesRestoreRunner | undefined;
  /** The listing under way that {@link Ebtables.prefetch} calls share. */
  #listingNow: Promise<Listing | undefined> | undefined;
  /** Transactions waiting for the one under way (see #commit). */
  #commits: QueuedCommit[] | undefined;
  /** Listed lines, parsed (see #parsed), by `CHAIN line`. */
  #lines = new Map<string, ListedLine>();
  /** The table as last listed, while nothing changed it. */
  #view: TableView;
  /** nf_tables' side of the table, for deletions by handle. */
  #nat: NatTable | undefined;

  /**
   * Creates the driver.
   *
   * @param options The binaries and injectable runners.
   */
  constructor(options: EbtablesOptions = {}) {
    const dirs = options.searchDirs ?? EBTABLES_DIRS;
    this.#run = options.run ??
      commandRunner(new FixedProgram(options.binary ?? "ebtables", dirs));
    this.#restore = options.restore ??
      (options.run === undefined
        ? restoreRunner(
          new FixedProgram(options.restoreBinary ?? "ebtables-restore", dirs),
        )
        : undefined);
    // One socket reads the generation and deletes (opened on first use).
    const own = options.run === undefined && options.generation === undefined
      ? ownNatTable()
      : undefined;
    this.#view = new TableView(
      own?.generation ?? options.generation ?? undefined,
    );
    this.#nat = options.nat === undefined ? own : options.nat ?? undefined;
  }

  async #exec(op: string, rule: EbtablesRule): Promise<EbtablesOutput> {
    const argv = ["-t", "nat", op, rule.chain, ...rule.args];
    let out: EbtablesOutput;
    try {
      out = await this.#run(argv);
    } catch (err) {
      throw new CniError(
        PLUGIN_CODES.ebtablesFailed,
        `Cannot run "${formatRule(op, rule)}"`,
        { cause: err },
      );
    }
    log.debug("{command} exited {code}: {stderr}", {
      command: formatRule(op, rule),
      code: out.code,
      stderr: out.stderr,
    });
    return out;
  }

  /**
   * Tells whether the rule is present.
   *
   * @param rule The rule.
   * @returns True when `--check` finds it.
   * @throws {CniError} Code 104 when ebtables fails otherwise (the message
   * carries its stderr).
   */
  async exists(rule: EbtablesRule): Promise<boolean> {
    const out = await this.#exec("--check", rule);
    if (out.code === 0) return true;
    if (out.code === 1) return false;
    throw failure("check", rule, out);
  }

  /**
   * Appends the rule unless it is already present.
   *
   * @param rule The rule.
   * @returns True when it was added, false when it was present.
   * @throws {CniError} Code 104 when ebtables fails.
   */
  async ensure(rule: EbtablesRule): Promise<boolean> {
    if (await this.exists(rule)) return false;
    const out = await this.#exec("-A", rule);
    if (out.code !== 0) throw failure("add", rule, out);
    return true;
  }

  /** Runs a listing command; CniError 104 with `failed` on any failure. */
  async #listing(argv: string[], failed: string): Promise<EbtablesOutput> {
    let out: EbtablesOutput;
    try {
      out = await this.#run(argv);
    } catch (err) {
      throw new CniError(
        PLUGIN_CODES.ebtablesFailed,
        `Cannot run "ebtables ${argv.join(" ")}"`,
        { cause: err },
      );
    }
    if (out.code !== 0) {
      throw new CniError(PLUGIN_CODES.ebtablesFailed, failed, {
        cause: new Error(`exit ${out.code}: ${out.stderr || "(no stderr)"}`),
      });
    }
    return out;
  }

  /**
   * Lists a chain of the `nat` table (`ebtables -t nat -L CHAIN`): one entry
   * per rule, its match and target arguments as ebtables prints them.
   *
   * @param chain The chain.
   * @returns The rules' argument lines (header lines dropped).
   * @throws {CniError} Code 104 when ebtables fails.
   */
  async list(chain: EbtablesChain): Promise<string[]> {
    const out = await this.#listing(
      ["-t", "nat", "-L", chain],
      `Cannot list ebtables chain "${chain}"`,
    );
    return out.stdout.split("\n").map((l) => l.trim()).filter((l) =>
      l.startsWith("-")
    );
  }

  /**
   * The whole `nat` table: the listing kept while nothing changed the
   * table (`TableView`), else a fresh one, which is then kept. `fresh`
   * lists in any case.
   */
  async #listTable(options: { fresh?: boolean } = {}): Promise<Listing> {
    const before = this.#view.generation();
    const kept = options.fresh ? undefined : this.#view.at(before);
    if (kept !== undefined) return kept;
    const listing = await this.#listFresh();
    this.#view.listed(listing, { before, after: this.#view.generation() });
    return listing;
  }

  /**
   * Lists the whole `nat` table once: each chain's rules as listed (split on
   * blanks) and their comparison keys ({@link ruleKey}) with counts.
   */
  async #listFresh(): Promise<Listing> {
    const out = await this.#listing(
      ["-t", "nat", "-L"],
      "Cannot list the ebtables nat table",
    );
    const keys = new Map<string, number>();
    const rules: EbtablesRule[] = [];
    let chain = "";
    for (const raw of out.stdout.split("\n")) {
      const line = raw.trim();
      const header = /^Bridge chain: ([^,]+),/.exec(line);
      if (header !== null) {
        chain = header[1] ?? "";
        continue;
      }
      if (!line.startsWith("-")) continue;
      const { key, args } = this.#parsed(chain, line);
      keys.set(key, (keys.get(key) ?? 0) + 1);
      if (listsRulesOf(chain)) rules.push({ chain, args });
    }
    return { keys, rules };
  }

  /**
   * A listed line split on blanks, and its `CHAIN key` ({@link ruleKey}).
   * A table lists the same lines again and again (a pair per pod), so both
   * are kept: a listing costs a map lookup per line, not a parse. Bounded:
   * cleared past 16384 lines.
   */
  #parsed(chain: string, line: string): ListedLine {
    const id = `${chain} ${line}`;
    let p = this.#lines.get(id);
    if (p === undefined) {
      if (this.#lines.size >= 16384) this.#lines.clear();
      const args: readonly string[] = line.split(/\s+/);
      p = { key: `${chain} ${ruleKey(args)}`, args };
      this.#lines.set(id, p);
    }
    return p;
  }

  /**
   * One `ebtables-restore --noflush` transaction of `lines` for
   * {@link Ebtables.replaceAll} (group commit, as the state files do).
   * While one runs, the next ones wait and then run as one transaction:
   * the agent's concurrent ADDs (each with addresses of its own, so no
   * line of one touches a rule of another) pay one exec for several. When
   * that transaction fails it changed nothing, and each runs alone, so
   * each sees the outcome it would have had by itself.
   */
  async #commit(
    restore: EbtablesRestoreRunner,
    ops: readonly RestoreOp[],
  ): Promise<EbtablesOutput> {
    const queue = this.#commits;
    if (queue !== undefined) {
      return await new Promise((resolve, reject) => {
        queue.push({ ops, resolve, reject });
      });
    }
    this.#commits = [];
    try {
      return await this.#restoreBatch(restore, ops);
    } finally {
      this.#drainCommits(restore);
    }
  }

  /** Runs the commits that waited, a batch at a time. Never rejects. */
  async #drainCommits(restore: EbtablesRestoreRunner): Promise<void> {
    for (;;) {
      const batch = this.#commits ?? [];
      if (batch.length === 0) {
        this.#commits = undefined;
        return;
      }
      this.#commits = [];
      if (batch.length > 1) {
        const together = await this.#restoreBatch(
          restore,
          batch.flatMap((c) => c.ops),
        ).catch(() => undefined);
        if (together?.code === 0) {
          for (const c of batch) c.resolve(together);
          continue;
        }
      }
      await Promise.all(batch.map(async (c) => {
        try {
          c.resolve(await this.#restoreBatch(restore, c.ops));
        } catch (err) {
          c.reject(err);
        }
      }));
    }
  }

  /**
   * Runs one transaction; when it commits, the table's view follows it
   * (`TableView.committed`).
   */
  async #restoreBatch(
    restore: EbtablesRestoreRunner,
    ops: readonly RestoreOp[],
  ): Promise<EbtablesOutput> {
    const nat = this.#nat;
    if (nat !== undefined && deleteByHandle(ops, { view: this.#view, nat })) {
      log.debug("Deleted {count} ebtables rules by handle", {
        count: ops.length,
      });
      return { code: 0, stdout: "", stderr: "" };
    }
    const input = transaction(ops);
    try {
      const before = this.#view.generation();
      const out = await restore(input);
      log.debug("ebtables-restore --noflush exited {code}: {stderr}", {
        code: out.code,
        stderr: out.stderr,
      });
      if (out.code === 0) {
        this.#view.committed(ops, { before, after: this.#view.generation() });
      }
      return out;
    } catch (err) {
      throw new CniError(
        PLUGIN_CODES.ebtablesFailed,
        `Cannot run "ebtables-restore --noflush"`,
        { cause: err },
      );
    }
  }

  /**
   * Of `rules`, those that are not in the table (one listing).
   *
   * @param rules The rules.
   * @param options `prefetched`: a listing taken earlier
   * ({@link Ebtables.prefetch}), read instead of listing now (when it
   * failed, the table is listed).
   * @returns The absent ones, in order.
   * @throws {CniError} Code 104 when ebtables fails.
   */
  async missing(
    rules: readonly EbtablesRule[],
    options: { prefetched?: PrefetchedListing | undefined } = {},
  ): Promise<EbtablesRule[]> {
    if (rules.length === 0) return [];
    if (this.#restore === undefined) {
      const out: EbtablesRule[] = [];
      for (const r of rules) if (!(await this.exists(r))) out.push(r);
      return out;
    }
    const { keys } = await options.prefetched?.listed ??
      await this.#listTable();
    return rules.filter((r) => !keys.has(listingKey(r)));
  }

  /**
   * Appends each rule that is absent: one listing, then all missing rules in
   * one `ebtables-restore --noflush` transaction (all or nothing).
   *
   * @param rules The rules (duplicates among them count once).
   * @returns The rules that were added.
   * @throws {CniError} Code 104 when ebtables fails (nothing was added, or
   * what was added is taken back).
   */
  async ensureAll(rules: readonly EbtablesRule[]): Promise<EbtablesRule[]> {
    const distinct = dedupe(rules);
    const restore = this.#restore;
    if (restore === undefined) {
      const added: EbtablesRule[] = [];
      try {
        for (const r of distinct) if (await this.ensure(r)) added.push(r);
      } catch (err) {
        // All or nothing, like the batch: take back what this call added.
        await this.#removeEach(added).catch((undoErr: unknown) => {
          log.error("Cannot take back ebtables rules: {err}", {
            err: String(undoErr),
          });
        });
        throw err;
      }
      return added;
    }
    const absent = await this.missing(distinct);
    if (absent.length === 0) return [];
    const out = await this.#restoreBatch(restore, restoreOps("-A", absent));
    if (out.code !== 0) {
      throw new CniError(
        PLUGIN_CODES.ebtablesFailed,
        `Cannot add ebtables rules: ${
          absent.map((r) => `"${formatRule("-A", r)}"`).join(", ")
        }`,
        {
          cause: new Error(`exit ${out.code}: ${out.stderr || "(no stderr)"}`),
        },
      );
    }
    return absent;
  }

  /**
   * Starts listing the `nat` table now, for a {@link Ebtables.replaceAll}
   * later (an ADD lists while its IPAM reservation runs, so the exec costs
   * it no time). Never rejects. Without a restore runner (tests' one-by-one
   * mode) nothing is listed ahead.
   *
   * Calls while a listing is under way share it (the agent's concurrent
   * ADDs: one exec and one parse for several). Such a listing is at most
   * one exec older than the call, as an ADD's own listing is older than
   * its address anyway; a transaction it misleads fails and is retried on
   * a listing of its own ({@link Ebtables.replaceAll}).
   *
   * @returns The listing under way.
   */
  prefetch(): PrefetchedListing {
    if (this.#restore === undefined) {
      return { listed: Promise.resolve(undefined) };
    }
    if (this.#listingNow === undefined) {
      const listed = this.#listTable().catch(() => undefined);
      this.#listingNow = listed;
      listed.finally(() => {
        if (this.#listingNow === listed) this.#listingNow = undefined;
      });
    }
    return { listed: this.#listingNow };
  }

  /**
   * Like {@link Ebtables.ensureAll}, and in the same single listing and
   * transaction also deletes the listed rules `obsolete` calls stale, as
   * listed; one of them that is one of `rules` is appended again, after
   * the deletions. Used to replace stale rules for the same addresses, and
   * those of a host veth.
   *
   * @param rules The rules to have (duplicates among them count once).
   * @param options `obsolete`: whether a listed rule (chain and arguments
   * as listed) is stale;
   * `prefetched`: a listing taken earlier ({@link Ebtables.prefetch}). When
   * the transaction built on it, or on the listing kept since the last one
   * (`TableView`), fails (the table changed since: another process removed
   * a stale rule), the table is listed afresh and the transaction retried
   * once.
   * @returns The rules that were added and those that were removed.
   * @throws {CniError} Code 104 when ebtables fails (the transaction then
   * changed nothing).
   */
  async replaceAll(
    rules: readonly EbtablesRule[],
    options: ReplaceOptions,
  ): Promise<{ added: EbtablesRule[]; removed: EbtablesRule[] }> {
    return await this.#replace(rules, options, { fresh: false });
  }

  async #replace(
    rules: readonly EbtablesRule[],
    options: ReplaceOptions,
    { fresh }: { fresh: boolean },
  ): Promise<{ added: EbtablesRule[]; removed: EbtablesRule[] }> {
    const distinct = dedupe(rules);
    function pick(listed: readonly EbtablesRule[]): EbtablesRule[] {
      return dedupe(listed.filter((l) => options.obsolete(l)));
    }
    const restore = this.#restore;
    if (restore === undefined) {
      const listed: EbtablesRule[] = [];
      for (const chain of ["PREROUTING", "POSTROUTING"] as const) {
        for (const line of await this.list(chain)) {
          listed.push({ chain, args: line.split(/\s+/) });
        }
      }
      const removed = await this.#removeEach(pick(listed));
      return { added: await this.ensureAll(distinct), removed };
    }
    const early = fresh ? undefined : await options.prefetched?.listed;
    const { keys, rules: listed } = early ??
      await this.#listTable({ fresh });
    const stale = pick(listed);
    // A stale rule that is wanted goes and comes back at the end.
    const renewed = new Set(stale.map(listingKey));
    const absent = distinct.filter((r) =>
      !keys.has(listingKey(r)) || renewed.has(listingKey(r))
    );
    if (stale.length === 0 && absent.length === 0) {
      return { added: [], removed: [] };
    }
    const out = await this.#commit(restore, [
      ...restoreOps("-D", stale),
      ...restoreOps("-A", absent),
    ]);
    if (out.code !== 0 && !fresh) {
      log.debug(
        "Batch on an earlier listing failed ({stderr}): listing again",
        {
          stderr: out.stderr,
        },
      );
      return await this.#replace(rules, options, { fresh: true });
    }
    if (out.code !== 0) {
      throw new CniError(
        PLUGIN_CODES.ebtablesFailed,
        `Cannot add ebtables rules: ${
          absent.map((r) => `"${formatRule("-A", r)}"`).join(", ") || "none"
        } (replacing ${stale.length} stale)`,
        {
          cause: new Error(`exit ${out.code}: ${out.stderr || "(no stderr)"}`),
        },
      );
    }
    if (stale.length > 0) {
      log.info("Replaced stale ebtables rules: {rules}", {
        rules: stale.map((r) => formatRule("-D", r)),
      });
    }
    return { added: absent, removed: stale };
  }

  /**
   * Deletes one copy of each rule; absent rules are fine. Tries all
   * deletions in one `ebtables-restore --noflush` transaction; when one rule
   * is absent (the transaction then changes nothing), lists the table and
   * deletes exactly the present ones.
   *
   * @param rules The rules (duplicates among them count once).
   * @returns The rules that were removed.
   * @throws {CniError} Code 104 when ebtables fails for another reason.
   */
  async removeAll(rules: readonly EbtablesRule[]): Promise<EbtablesRule[]> {
    const distinct = dedupe(rules);
    const restore = this.#restore;
    if (restore === undefined) {
      return await this.#removeEach(distinct);
    }
    const first = await this.#restoreBatch(
      restore,
      restoreOps("-D", distinct),
    );
    if (first.code === 0) return distinct;
    const absent = new Set(await this.missing(distinct));
    const present = distinct.filter((r) => !absent.has(r));
    if (present.length === 0) return [];
    const second = await this.#restoreBatch(
      restore,
      restoreOps("-D", present),
    );
    if (second.code === 0) return present;
    // The table changed under us or the listing misled us: one by one.
    log.warn("Batched ebtables delete failed ({stderr}), deleting one by one", {
      stderr: second.stderr,
    });
    return await this.#removeEach(present);
  }

  async #removeEach(rules: readonly EbtablesRule[]): Promise<EbtablesRule[]> {
    const removed: EbtablesRule[] = [];
    for (const r of rules) if (await this.remove(r)) removed.push(r);
    return removed;
  }

  /**
   * Deletes the rule; absent is not an error. One `-D` removes one copy:
   * {@link Ebtables.ensure} never creates a second one.
   *
   * @param rule The rule.
   * @returns True when it was removed, false when it was absent.
   * @throws {CniError} Code 104 when ebtables fails for another reason.
   */
  async remove(rule: EbtablesRule): Promise<boolean> {
    const out = await this.#exec("-D", rule);
    if (out.code === 0) return true;
    if (isAbsent(out)) return false;
    throw failure("delete", rule, out);
  }
}

function isAbsent(out: EbtablesOutput): boolean {
  return out.code === 1 &&
    /does a matching rule exist|No such file|does not exist/i.test(
      out.stderr,
    );
}

const OPS = { check: "--check", add: "-A", delete: "-D" } as const;

function failure(
  action: keyof typeof OPS,
  rule: EbtablesRule,
  out: EbtablesOutput,
): CniError {
  return new CniError(
    PLUGIN_CODES.ebtablesFailed,
    `Cannot ${action} ebtables rule: "${formatRule(OPS[action], rule)}"`,
    { cause: new Error(`exit ${out.code}: ${out.stderr || "(no stderr)"}`) },
  );
}
