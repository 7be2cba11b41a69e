/**
 * ebtables (Debian's `ebtables-nft`) driven through `Deno.Command` with
 * argument arrays, never a shell.
 *
 * Presence is tested with `ebtables -t nat --check CHAIN <rule>` (exit 0:
 * present, 1: absent; verified with ebtables 1.8.9 (nf_tables)). Note that
 * `-C` means "change counters" in ebtables, not "check". A rule is appended
 * only when absent, and deleted with `-D` using the very same arguments, so
 * no duplicates are created and only our rules are removed.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { CniError, PLUGIN_CODES } from "@vnet/cni";

const log = getLogger(["azure-vnet", "ebtables"]);

/** The `nat` table chains we use. */
export type EbtablesChain = "PREROUTING" | "POSTROUTING";

/** One rule of the `nat` table: its chain and its match/target arguments. */
export interface EbtablesRule {
  /** The chain. */
  readonly chain: EbtablesChain;
  /** Everything after the chain name, as ebtables takes it. */
  readonly args: readonly string[];
}

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

/** Options of {@link Ebtables}. */
export interface EbtablesOptions {
  /** The binary (default `ebtables`, searched on PATH). */
  binary?: string;
  /** Replaces the process runner (tests). */
  run?: EbtablesRunner;
}

function commandRunner(binary: string): EbtablesRunner {
  return async function run(argv) {
    const out = await new Deno.Command(binary, {
      args: [...argv],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr).trim(),
    };
  };
}

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
 * import { formatRule } from "./ebtables.ts";
 * assert.equal(
 *   formatRule("-A", { chain: "POSTROUTING", args: ["-o", "eth0"] }),
 *   "ebtables -t nat -A POSTROUTING -o eth0",
 * );
 * ```
 */
export function formatRule(op: string, rule: EbtablesRule): string {
  return ["ebtables", "-t", "nat", op, rule.chain, ...rule.args].join(" ");
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
 * import { Ebtables, podDnatRule } from "./ebtables.ts";
 * const eb = new Ebtables();
 * await eb.ensure(podDnatRule("eth0", { ip: "10.0.0.5", mac: "12:34:56:78:9a:bc" }));
 * ```
 */
export class Ebtables {
  #run: EbtablesRunner;

  /**
   * Creates the driver.
   *
   * @param options The binary and an injectable runner.
   */
  constructor(options: EbtablesOptions = {}) {
    this.#run = options.run ?? commandRunner(options.binary ?? "ebtables");
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

  /**
   * Lists a chain of the `nat` table (`ebtables -t nat -L CHAIN`): one entry
   * per rule, its match and target arguments as ebtables prints them.
   *
   * @param chain The chain.
   * @returns The rules' argument lines (header lines dropped).
   * @throws {CniError} Code 104 when ebtables fails.
   */
  async list(chain: EbtablesChain): Promise<string[]> {
    const argv = ["-t", "nat", "-L", chain];
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
      throw new CniError(
        PLUGIN_CODES.ebtablesFailed,
        `Cannot list ebtables chain "${chain}"`,
        {
          cause: new Error(`exit ${out.code}: ${out.stderr || "(no stderr)"}`),
        },
      );
    }
    return out.stdout.split("\n").map((l) => l.trim()).filter((l) =>
      l.startsWith("-")
    );
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

/** A MAC and an IPv4 address. */
export interface MacIp {
  /** The IPv4 address, without prefix. */
  readonly ip: string;
  /** The MAC, `aa:bb:cc:dd:ee:ff`. */
  readonly mac: string;
}

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
 * import { masterSnatRule } from "./ebtables.ts";
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
 * import { arpReplyRule } from "./ebtables.ts";
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
 * ARP-reply redirect: ARP replies arriving on the master are broadcast on the
 * bridge, so the pod that asked receives them.
 *
 * @param master The master interface.
 * @returns `PREROUTING -p ARP -i <master> --arp-op Reply -j dnat --to-dst ff:ff:ff:ff:ff:ff --dnat-target ACCEPT`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { arpReplyRedirectRule } from "./ebtables.ts";
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
 * import { podDnatRule } from "./ebtables.ts";
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
