/**
 * The `#!/bin/sh` launcher that stands in for a compiled binary when
 * `deno compile` cannot get its `denort` runtime.
 *
 * @module
 */
import {
  AGENT_SOCKET_NAME,
  CNI_PLUGIN_DIRS,
  DEFAULT_LOG_DIR,
  DEFAULT_STATE_DIR,
  NET_ALLOW,
  type TargetPermissions,
} from "./targets.ts";

/**
 * The glibc dynamic linker's environment variables (ld.so(8), glibc 2.36),
 * which the launcher unsets before it execs deno.
 *
 * A runtime's environment reaches every plugin: containerd 1.6 passes
 * `LD_LIBRARY_PATH=/opt/containerd/lib:`, which would make deno's own
 * libraries and libnl (dlopen'd by soname) come from `/opt/containerd/lib`
 * or, through the trailing `:`, the current directory, first. Others break
 * the plugin outright (`LD_TRACE_LOADED_OBJECTS` makes deno print its
 * libraries and exit; `LD_DEBUG` floods stderr). The plugin's libraries are
 * the system's (`VNET_LIBNL_PATH` names another libnl on purpose). The
 * shell running the launcher has been loaded with them already; nothing
 * after it is. Unsetting costs nothing (a builtin).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { LOADER_VARIABLES } from "./launcher.ts";
 * assert.ok(LOADER_VARIABLES.includes("LD_LIBRARY_PATH"));
 * assert.ok(LOADER_VARIABLES.every((v) => v.startsWith("LD_")));
 * ```
 */
export const LOADER_VARIABLES: readonly string[] = [
  "LD_ASSUME_KERNEL",
  "LD_AUDIT",
  "LD_BIND_NOT",
  "LD_BIND_NOW",
  "LD_DEBUG",
  "LD_DEBUG_OUTPUT",
  "LD_DYNAMIC_WEAK",
  "LD_HWCAP_MASK",
  "LD_LIBRARY_PATH",
  "LD_ORIGIN_PATH",
  "LD_POINTER_GUARD",
  "LD_PREFER_MAP_32BIT_EXEC",
  "LD_PRELOAD",
  "LD_PROFILE",
  "LD_PROFILE_OUTPUT",
  "LD_SHOW_AUXV",
  "LD_TRACE_LOADED_OBJECTS",
  "LD_TRACE_PRELINKING",
  "LD_USE_LOAD_BIAS",
  "LD_VERBOSE",
  "LD_WARN",
];

/** Quotes a string for a POSIX shell (single quotes). */
export function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** What the launcher runs. */
export interface LauncherSpec {
  /** Name of the bundle, looked up next to the launcher (`azure-vnet.js`). */
  bundleName: string;
  /** Absolute path of the pinned `deno` binary. */
  denoPath: string;
  /** The fixed `DENO_DIR` (writable, pre-warmed). */
  denoDir: string;
  /** The permissions to grant. */
  permissions: TargetPermissions;
  /** V8 flags, passed as one `--v8-flags=` (none by default). */
  v8Flags?: readonly string[];
}

/**
 * Renders the launcher script for one plugin.
 *
 * The script sets a default `PATH` (a runtime may run DEL with a reduced
 * environment), unsets the dynamic linker's variables
 * ({@link LOADER_VARIABLES}), pins `DENO_DIR`, scopes
 * `--allow-read`/`--allow-write` to `${AZURE_VNET_STATE_DIR:-/var/run}`,
 * `${AZURE_VNET_LOG_DIR:-/var/log}` and the target's fixed paths, grants
 * `--allow-run` on the target's programs by absolute path (never through
 * `PATH`) and, for a plugin that execs IPAM delegates, on exactly the
 * executables in the `CNI_PATH` directories, with read access to every
 * `CNI_PATH` entry (a missing directory too, so that the plugin's lookup
 * sees "not found" there rather than a refusal). The bundle is found next
 * to the launcher (`${0%/*}`).
 *
 * @param spec The bundle name, deno path, `DENO_DIR` and permissions.
 * @returns The script text.
 * @throws {TypeError} When a program to run is not an absolute path.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderLauncher } from "./launcher.ts";
 * const sh = renderLauncher({
 *   bundleName: "x.js",
 *   denoPath: "/usr/bin/deno",
 *   denoDir: "/var/lib/x",
 *   permissions: {
 *     ffi: false, net: false, read: [], write: [], sys: [], run: [], delegates: false,
 *   },
 * });
 * assert.match(sh, /^#!\/bin\/sh\n/);
 * assert.match(sh, /--no-config --cached-only/);
 * ```
 */
export function renderLauncher(spec: LauncherSpec): string {
  const p = spec.permissions;
  assertAbsoluteRun(p);
  const flags: string[] = [];
  if (p.all === true) flags.push("--allow-all");
  else flags.push(...scopedLauncherFlags(p));
  return renderScript(spec, flags);
}

function assertAbsoluteRun(p: TargetPermissions): void {
  const bare = p.run.filter((x) => !x.startsWith("/"));
  if (bare.length > 0) {
    throw new TypeError(
      `Cannot grant --allow-run on ${
        JSON.stringify(bare)
      }: programs must be absolute paths (a name is resolved through PATH)`,
    );
  }
}

function scopedLauncherFlags(p: TargetPermissions): string[] {
  const read = p.read.map((x) => `,${x}`).join("");
  const write = p.write.map((x) => `,${x}`).join("");
  const flags: string[] = [];
  if (p.ffi) flags.push("--allow-ffi");
  flags.push("--allow-env");
  flags.push(`--allow-read="$state,$log${read}$cni_read"`);
  flags.push(`--allow-write="$state,$log${write}"`);
  if (p.sys.length > 0) flags.push(`--allow-sys=${p.sys.join(",")}`);
  if (p.run.length > 0 || p.delegates) flags.push(`--allow-run="$run"`);
  const net = netGrants(p, "$state");
  if (net.length > 0) flags.push(`--allow-net="${net.join(",")}"`);
  return flags;
}

/** The `--allow-net` grants: the Azure hosts, and the agent's socket. */
function netGrants(p: TargetPermissions, stateDir: string): string[] {
  return [
    ...(p.net ? NET_ALLOW : []),
    ...(p.net ? p.netHosts ?? [] : []),
    ...(p.agentSocket === true
      ? [`unix:${stateDir}/${AGENT_SOCKET_NAME}`]
      : []),
  ];
}

/** `unset A B \` lines, five names each. */
function unsetLines(names: readonly string[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i < names.length; i += 5) {
    lines.push(`  ${names.slice(i, i + 5).join(" ")}`);
  }
  return [
    "unset \\",
    ...lines.map((l, i) => i < lines.length - 1 ? `${l} \\` : l),
  ];
}

function renderScript(spec: LauncherSpec, flags: string[]): string {
  const p = spec.permissions;
  const delegates = p.delegates
    ? [
      "# Delegates: every executable in the CNI_PATH directories. Read on every",
      '# entry, present or not, so that a missing one is "not found" to the',
      "# plugin's lookup, not a permission refusal. An entry is granted only",
      "# literally (set -f: no wildcard expansion) and only when absolute (a",
      "# relative one would name a path under the runtime's working dir).",
      "IFS=:",
      "set -f",
      "for d in ${CNI_PATH:-}; do",
      "  set +f",
      "  case $d in /*) ;; *) continue ;; esac",
      "  case $d in *,*) continue ;; esac",
      '  cni_read="$cni_read,$d"',
      '  [ -d "$d" ] || continue',
      '  for f in "$d"/*; do',
      "    case $f in *,*) continue ;; esac",
      '    [ -f "$f" ] && [ -x "$f" ] && run="$run,$f"',
      "  done",
      "done",
      "set +f",
      "unset IFS",
    ]
    : [];
  return [
    "#!/bin/sh",
    "# Generated by tools/build (deno compile fallback): runs the bundle next",
    "# to this script with the pinned deno and only the permissions it needs.",
    ': "${PATH:=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}"',
    "export PATH",
    "# The runtime's dynamic-linker variables (containerd: LD_LIBRARY_PATH=",
    "# /opt/containerd/lib:) must not pick deno's or libnl's libraries.",
    ...unsetLines(LOADER_VARIABLES),
    `DENO_DIR=${shQuote(spec.denoDir)}`,
    "export DENO_DIR",
    "DENO_NO_UPDATE_CHECK=1",
    "export DENO_NO_UPDATE_CHECK",
    `state="\${AZURE_VNET_STATE_DIR:-${DEFAULT_STATE_DIR}}"`,
    `log="\${AZURE_VNET_LOG_DIR:-${DEFAULT_LOG_DIR}}"`,
    `run=${shQuote(p.run.join(","))}`,
    "cni_read=",
    ...delegates,
    'case $0 in */*) here=${0%/*} ;; *) here=$(dirname "$(command -v "$0")") ;; esac',
    `exec ${
      shQuote(spec.denoPath)
    } run --no-config --cached-only --no-prompt \\`,
    ...v8FlagArgs(spec.v8Flags).map((f) => `  ${shQuote(f)} \\`),
    ...flags.map((f) => `  ${f} \\`),
    `  "$here"/${shQuote(spec.bundleName)} "$@"`,
    "",
  ].join("\n");
}

/**
 * The `--v8-flags=` argument of a target's V8 flags, if any.
 *
 * @param flags The V8 flags.
 * @returns `[]`, or one `--v8-flags=a,b` argument.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { v8FlagArgs } from "./launcher.ts";
 * assert.deepEqual(v8FlagArgs(["--a=1", "--b"]), ["--v8-flags=--a=1,--b"]);
 * assert.deepEqual(v8FlagArgs(undefined), []);
 * ```
 */
export function v8FlagArgs(flags: readonly string[] | undefined): string[] {
  return flags === undefined || flags.length === 0
    ? []
    : [`--v8-flags=${flags.join(",")}`];
}

/**
 * The `deno compile` permission flags of a target (fixed at build time).
 *
 * A target that execs delegates gets `--allow-run` unrestricted (their
 * paths come from `CNI_PATH` at run time) and read on the standard plugin
 * dirs ({@link CNI_PLUGIN_DIRS}), where its delegate lookup looks.
 *
 * @param p The target's permissions.
 * @returns The flags, with the default state and log directories.
 * @throws {TypeError} When a program to run is not an absolute path.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileFlags } from "./launcher.ts";
 * const flags = compileFlags({
 *   ffi: true, net: false, read: ["/proc"], write: [], sys: [], run: [],
 *   delegates: false,
 * });
 * assert.ok(flags.includes("--allow-ffi"));
 * assert.ok(flags.includes("--allow-read=/var/run,/var/log,/proc"));
 * ```
 */
export function compileFlags(p: TargetPermissions): string[] {
  if (p.all === true) return ["--allow-all"];
  assertAbsoluteRun(p);
  const base = [DEFAULT_STATE_DIR, DEFAULT_LOG_DIR];
  const flags: string[] = [];
  if (p.ffi) flags.push("--allow-ffi");
  flags.push("--allow-env");
  const cniRead = p.delegates ? CNI_PLUGIN_DIRS : [];
  flags.push(`--allow-read=${[...base, ...p.read, ...cniRead].join(",")}`);
  flags.push(`--allow-write=${[...base, ...p.write].join(",")}`);
  if (p.sys.length > 0) flags.push(`--allow-sys=${p.sys.join(",")}`);
  if (p.delegates) flags.push("--allow-run");
  else if (p.run.length > 0) flags.push(`--allow-run=${p.run.join(",")}`);
  const net = netGrants(p, DEFAULT_STATE_DIR);
  if (net.length > 0) flags.push(`--allow-net=${net.join(",")}`);
  return flags;
}

/**
 * The file name a bundle chunk gets next to the launcher: the target's
 * name, a dot, and the bundler's own name (`azure-vnet.in_process-X1Y2.js`),
 * so the installer finds a target's chunks by its name.
 *
 * @param target The target's name.
 * @param chunk The bundler's name of the chunk.
 * @returns The chunk's file name.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { chunkName } from "./launcher.ts";
 * assert.equal(chunkName("a", "x-1.js"), "a.x-1.js");
 * ```
 */
export function chunkName(target: string, chunk: string): string {
  return `${target}.${chunk}`;
}

/**
 * The chunks of a target in a directory: `<name>.*.js` (see
 * {@link chunkName}), sorted; not `<name>.js` itself.
 *
 * @param dir The directory (`dist/`, or where the installer copies from).
 * @param name The target's name.
 * @returns The chunks' file names.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { bundleChunks } from "./launcher.ts";
 * const dir = await Deno.makeTempDir();
 * for (const f of ["a.js", "a.x-1.js", "a-b.js", "a-b.y-2.js"]) {
 *   await Deno.writeTextFile(`${dir}/${f}`, "");
 * }
 * assert.deepEqual(bundleChunks(dir, "a"), ["a.x-1.js"]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function bundleChunks(dir: string, name: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (
      e.isFile && e.name.startsWith(`${name}.`) && e.name.endsWith(".js") &&
      e.name !== `${name}.js`
    ) out.push(e.name);
  }
  return out.sort();
}
