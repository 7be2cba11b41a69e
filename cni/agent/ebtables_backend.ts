/**
 * Whether the agent's `ebtables` edits the same rule set as the node's.
 *
 * `ebtables` comes in two backends: nf_tables (`ebtables-nft`,
 * `xtables-nft-multi`) and the legacy kernel tables (`ebtables-legacy`).
 * Their rules live apart: one does not list, check or delete the other's.
 * The agent in its image runs the image's `ebtables` (ebtables-nft); the
 * plugins' fallback on the node runs the node's. When the two differ, the
 * pods' rules split between two rule sets: a DEL through the fallback
 * misses the rules the agent added, and an address given to another pod
 * keeps the old pod's rules.
 *
 * The node's backend is read from its file system without running any of
 * its programs (they need the node's libraries): through `/proc/1/root`
 * (the node's root, with `hostPID`; `AZURE_VNET_AGENT_HOST_ROOT` names
 * another), `ebtables` is looked up in the plugins' directories
 * (`EBTABLES_DIRS`), following every link as the node would
 * (`/etc/alternatives/ebtables` included), and the names on the way say it.
 * The agent's own comes from its `ebtables --version` (`(nf_tables)` or
 * `(legacy)`).
 *
 * @module
 */
import { EBTABLES_DIRS } from "@vnet/azure-vnet";

/** The variable naming the node's root directory as the agent sees it. */
export const HOST_ROOT_VAR = "AZURE_VNET_AGENT_HOST_ROOT";

/** The node's root by default: PID 1's, the node's init under `hostPID`. */
export const DEFAULT_HOST_ROOT = "/proc/1/root";

/** The most links followed for one path, as Linux's `MAXSYMLINKS`. */
const MAX_LINKS = 40;

/** An ebtables backend. */
export type EbtablesBackend = "nft" | "legacy";

/** Reads a link's target; undefined for no link; throws when missing. */
export type LinkReader = (path: string) => string | undefined;

/** A path resolved inside a root directory. */
export interface ResolvedPath {
  /** The file it ends at, as the root's own system names it. */
  readonly path: string;
  /** Each link followed, `link -> target`, in order. */
  readonly links: readonly string[];
}

/**
 * Resolves `path` as the system whose root is `root` would: each
 * component in turn, links followed, an absolute target taken from `root`
 * again (never from this process's root), `..` never above it.
 *
 * @param root The other system's root (`/proc/1/root`), or `/`.
 * @param path The absolute path there.
 * @param options `readLink` (`readLink` of `@vnet/netlink`: Deno's file APIs
 *   refuse `/proc`).
 * @returns The file it ends at and the links on the way.
 * @throws {Deno.errors.NotFound} When a component does not exist.
 * @throws {RangeError} After 40 links (a loop).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveInRoot } from "./ebtables_backend.ts";
 * const links: Record<string, string> = {
 *   "/r/sbin": "usr/sbin",
 *   "/r/usr/sbin/ebtables": "/etc/alternatives/ebtables",
 *   "/r/etc/alternatives/ebtables": "/usr/sbin/ebtables-legacy",
 * };
 * const r = resolveInRoot("/r", "/sbin/ebtables", {
 *   readLink: (p) => links[p],
 * });
 * assert.equal(r.path, "/usr/sbin/ebtables-legacy");
 * assert.equal(r.links.length, 3);
 * ```
 */
export function resolveInRoot(
  root: string,
  path: string,
  options: { readLink: LinkReader },
): ResolvedPath {
  const base = root.replace(/\/+$/, "");
  const links: string[] = [];
  let done: string[] = [];
  let todo = path.split("/");
  for (;;) {
    const [part, ...rest] = todo;
    if (part === undefined) break;
    todo = rest;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      done.pop();
      continue;
    }
    const here = `/${[...done, part].join("/")}`;
    const target = options.readLink(`${base}${here}`);
    if (target === undefined) {
      done = [...done, part];
      continue;
    }
    if (links.length >= MAX_LINKS) {
      throw new RangeError(
        `Cannot resolve "${path}" in "${root}": more than ${MAX_LINKS} links`,
      );
    }
    links.push(`${here} -> ${target}`);
    if (target.startsWith("/")) done = [];
    todo = [...target.split("/"), ...todo];
  }
  return { path: `/${done.join("/")}`, links };
}

/**
 * The backend a program's name says: `legacy` (`ebtables-legacy`,
 * `xtables-legacy-multi`) or `nft` (`ebtables-nft`, `xtables-nft-multi`).
 */
function backendOfName(name: string): EbtablesBackend | undefined {
  const base = name.slice(name.lastIndexOf("/") + 1);
  if (/(^|[-_.])legacy([-_.]|$)/.test(base)) return "legacy";
  if (/(^|[-_.])nft([-_.]|$)/.test(base)) return "nft";
  return undefined;
}

/** What {@link hostEbtables} or {@link agentEbtables} found. */
export interface EbtablesFinding {
  /** The backend, or undefined when it cannot be told. */
  readonly backend?: EbtablesBackend;
  /** What it was told from, or why not: one line for the log. */
  readonly evidence: string;
}

/**
 * The node's `ebtables` backend, from the names of the links and the file
 * that `ebtables` resolves to in the first of `EBTABLES_DIRS` that has it
 * (as the plugins pick it), read through `root`.
 *
 * @param root The node's root (`/proc/1/root`).
 * @param options `readLink`, and the directories (default `EBTABLES_DIRS`).
 * @returns The backend when the names say it, and the evidence.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostEbtables } from "./ebtables_backend.ts";
 * const links: Record<string, string> = {
 *   "/r/usr/sbin/ebtables": "/etc/alternatives/ebtables",
 *   "/r/etc/alternatives/ebtables": "/usr/sbin/ebtables-nft",
 *   "/r/usr/sbin/ebtables-nft": "xtables-nft-multi",
 * };
 * // Every other path exists and is no link.
 * const found = hostEbtables("/r", { readLink: (p) => links[p] });
 * assert.equal(found.backend, "nft");
 * ```
 */
export function hostEbtables(
  root: string,
  options: { readLink: LinkReader; dirs?: readonly string[] },
): EbtablesFinding {
  for (const dir of options.dirs ?? EBTABLES_DIRS) {
    const path = `${dir.replace(/\/+$/, "")}/ebtables`;
    let resolved: ResolvedPath;
    try {
      resolved = resolveInRoot(root, path, options);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      return {
        evidence: `cannot read "${path}" in "${root}": ${
          err instanceof Error ? err.message : String(err)
        }`,
      };
    }
    const names = [
      resolved.path,
      ...resolved.links.map((l) => l.slice(l.indexOf(" -> ") + 4)).reverse(),
    ];
    const chain = [
      ...resolved.links.map((l) => l.split(" -> ")[0]),
      resolved.path,
    ]
      .join(" -> ");
    for (const name of names) {
      const backend = backendOfName(name);
      if (backend !== undefined) {
        return { backend, evidence: `${chain} in "${root}"` };
      }
    }
    return {
      evidence: `${chain} in "${root}": no name says nft or legacy`,
    };
  }
  return {
    evidence: `no ebtables in ${
      (options.dirs ?? EBTABLES_DIRS).join(", ")
    } of "${root}"`,
  };
}

/**
 * The backend an `ebtables --version` line says: `(nf_tables)` or
 * `(legacy)`; ebtables before 1.8 (`v2.0…`) knew only the legacy tables.
 *
 * @param text The output.
 * @returns The backend, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { backendOfVersion } from "./ebtables_backend.ts";
 * assert.equal(backendOfVersion("ebtables 1.8.9 (nf_tables)\n"), "nft");
 * assert.equal(backendOfVersion("ebtables v2.0.11 (legacy) (December 2011)"), "legacy");
 * assert.equal(backendOfVersion("ebtables v2.0.10-4 (December 2011)"), "legacy");
 * ```
 */
export function backendOfVersion(text: string): EbtablesBackend | undefined {
  if (/\(nf_tables\)/.test(text)) return "nft";
  if (/\(legacy\)/.test(text) || /^ebtables v2\./.test(text.trim())) {
    return "legacy";
  }
  return undefined;
}

/** Runs `<path> --version`: its exit code and output (injectable). */
export type VersionRunner = (
  path: string,
) => Promise<{ code: number; stdout: string }>;

async function runVersion(
  path: string,
): Promise<{ code: number; stdout: string }> {
  const out = await new Deno.Command(path, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
}

/**
 * The agent's own `ebtables` backend, from `ebtables --version` of the
 * first of `EBTABLES_DIRS` that has it (the one its handlers run).
 *
 * @param options The runner (default `Deno.Command`, environment cleared)
 *   and the directories.
 * @returns The backend when the output says it, and the evidence.
 *
 * @tags allow-run
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { agentEbtables } from "./ebtables_backend.ts";
 * const found = await agentEbtables({
 *   run: () => Promise.resolve({ code: 0, stdout: "ebtables 1.8.9 (nf_tables)\n" }),
 * });
 * assert.equal(found.backend, "nft");
 * ```
 */
export async function agentEbtables(
  options: { run?: VersionRunner; dirs?: readonly string[] } = {},
): Promise<EbtablesFinding> {
  const run = options.run ?? runVersion;
  const dirs = options.dirs ?? EBTABLES_DIRS;
  for (const dir of dirs) {
    const path = `${dir.replace(/\/+$/, "")}/ebtables`;
    let out: { code: number; stdout: string };
    try {
      out = await run(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      return {
        evidence: `cannot run "${path} --version": ${
          err instanceof Error ? err.message : String(err)
        }`,
      };
    }
    const line = out.stdout.trim().split("\n")[0] ?? "";
    const backend = out.code === 0 ? backendOfVersion(line) : undefined;
    return backend === undefined
      ? { evidence: `"${path} --version" said "${line}" (exit ${out.code})` }
      : { backend, evidence: `"${path} --version": ${line}` };
  }
  return { evidence: `no ebtables in ${dirs.join(", ")}` };
}

/** What {@link compareEbtables} concluded. */
export interface EbtablesCheck {
  /**
   * The mismatch, one line for the log and the hand-backs, when both
   * backends are known and differ; undefined otherwise.
   */
  readonly mismatch?: string;
  /** When a backend is unknown: why the agent serves bridge calls anyway. */
  readonly unknown?: string;
  /** When both agree: the backend. */
  readonly same?: EbtablesBackend;
}

/**
 * Compares the node's `ebtables` backend with the agent's.
 *
 * @param host The node's ({@link hostEbtables}).
 * @param own The agent's ({@link agentEbtables}).
 * @returns A mismatch, an unknown, or the shared backend.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareEbtables } from "./ebtables_backend.ts";
 * const check = compareEbtables(
 *   { backend: "legacy", evidence: "/usr/sbin/ebtables-legacy" },
 *   { backend: "nft", evidence: "ebtables 1.8.9 (nf_tables)" },
 * );
 * assert.match(check.mismatch ?? "", /node's ebtables is legacy/);
 * ```
 */
export function compareEbtables(
  host: EbtablesFinding,
  own: EbtablesFinding,
): EbtablesCheck {
  if (host.backend === undefined || own.backend === undefined) {
    return {
      unknown: `the node's ebtables backend is ${
        host.backend ?? "unknown"
      } (${host.evidence}), the agent's ${
        own.backend ?? "unknown"
      } (${own.evidence})`,
    };
  }
  if (host.backend === own.backend) return { same: host.backend };
  return {
    mismatch:
      `the node's ebtables is ${host.backend} (${host.evidence}) but the agent's is ${own.backend} (${own.evidence})`,
  };
}
