/**
 * What the installed plugins need from the node itself, checked under the
 * node's root directory before anything is installed.
 *
 * The plugins run on the node, not in the DaemonSet's image: whenever the
 * agent does not answer (a fresh node before it listens, every rollout,
 * after a crash) a plugin runs the call in its own process, with the
 * node's dynamic linker, libnl and ebtables. The image's own copies serve
 * only what runs inside it, so an install checked there proves nothing
 * about the node (a DEL then fails with code 999, "Cannot load library
 * libnl-3.so.200"). The DaemonSet's init container reaches the node's root
 * through `/proc/1/root` (the pod has `hostPID`).
 *
 * Looked for, each under the root, following the node's own symlinks
 * (absolute ones taken relative to the root):
 *
 * - libnl: `libnl-3.so.200` and `libnl-route-3.so.200` in the library
 *   dirs: `/lib`, `/usr/lib`, `/lib64`, `/usr/lib64`, `/usr/local/lib`,
 *   their multiarch dirs and the dirs `/etc/ld.so.conf.d/*.conf` and
 *   `/etc/ld.so.conf` name (what `ld.so.cache` is built from);
 * - `ebtables` and `ebtables-restore` in one of the dirs the plugin runs
 *   them from (`EBTABLES_DIRS`, never `PATH`);
 * - glibc for the pinned deno: its dynamic loader at the path the binary
 *   names (`/lib64/ld-linux-x86-64.so.2`, `/lib/ld-linux-aarch64.so.1`),
 *   `libc.so.6` and `libgcc_s.so.1` (its version is not checked: deno
 *   2.9.6 needs glibc 2.27 or later).
 *
 * @module
 */
import { EBTABLES_DIRS } from "../build/targets.ts";

/** One thing the node lacks, and the packages that bring it. */
export interface HostLack {
  /** The library or program, such as `libnl-3.so.200` or `ebtables`. */
  name: string;
  /** The Debian and Ubuntu package. */
  debian: string;
  /** The Azure Linux (and CBL-Mariner) package. */
  azureLinux: string;
}

/** Options of {@link checkHost}. */
export interface HostCheckOptions {
  /** Deno's `Deno.build.arch` of the node (default: this process's). */
  arch?: string;
}

const LIBNL = [
  { name: "libnl-3.so.200", debian: "libnl-3-200", azureLinux: "libnl3" },
  {
    name: "libnl-route-3.so.200",
    debian: "libnl-route-3-200",
    azureLinux: "libnl3",
  },
];
const EBTABLES = ["ebtables", "ebtables-restore"].map((name) => ({
  name,
  debian: "ebtables",
  azureLinux: "ebtables-legacy",
}));
const GLIBC = [
  { name: "libc.so.6", debian: "libc6", azureLinux: "glibc" },
  { name: "libgcc_s.so.1", debian: "libgcc-s1", azureLinux: "libgcc" },
];
const MULTIARCH: Readonly<Record<string, string>> = {
  "x86_64": "x86_64-linux-gnu",
  aarch64: "aarch64-linux-gnu",
};
const LOADER: Readonly<Record<string, string>> = {
  "x86_64": "/lib64/ld-linux-x86-64.so.2",
  aarch64: "/lib/ld-linux-aarch64.so.1",
};

/**
 * Resolves `path` under `root` as the node would: each symlink on the way
 * is followed, an absolute one from `root`. Undefined when a component is
 * missing or the links loop.
 */
async function resolveUnder(
  root: string,
  path: string,
): Promise<string | undefined> {
  const todo = path.split("/").filter(Boolean);
  const done: string[] = [];
  let links = 0;
  for (let name = todo.shift(); name !== undefined; name = todo.shift()) {
    if (name === ".") continue;
    if (name === "..") {
      done.pop();
      continue;
    }
    const here = `${root}/${[...done, name].join("/")}`;
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(here);
    } catch (err) {
      if (
        err instanceof Deno.errors.NotFound ||
        err instanceof Deno.errors.NotADirectory
      ) return undefined;
      throw err;
    }
    if (!info.isSymlink) {
      done.push(name);
      continue;
    }
    if (++links > 40) return undefined;
    const target = await Deno.readLink(here);
    if (target.startsWith("/")) done.length = 0;
    todo.unshift(...target.split("/").filter(Boolean));
  }
  return `${root}/${done.join("/")}`;
}

/** Whether `path` under `root` is a file (after the node's symlinks). */
async function isFileUnder(root: string, path: string): Promise<boolean> {
  const real = await resolveUnder(root, path);
  if (real === undefined) return false;
  return (await Deno.stat(real)).isFile;
}

/** The dirs `/etc/ld.so.conf` and `/etc/ld.so.conf.d/*.conf` name. */
async function ldConfDirs(root: string): Promise<string[]> {
  const files = ["/etc/ld.so.conf"];
  const confD = await resolveUnder(root, "/etc/ld.so.conf.d");
  if (confD !== undefined && (await Deno.stat(confD)).isDirectory) {
    for await (const e of Deno.readDir(confD)) {
      if (e.name.endsWith(".conf")) files.push(`/etc/ld.so.conf.d/${e.name}`);
    }
  }
  const dirs: string[] = [];
  for (const f of files.sort()) {
    const real = await resolveUnder(root, f);
    if (real === undefined || !(await Deno.stat(real)).isFile) continue;
    for (const line of (await Deno.readTextFile(real)).split("\n")) {
      const dir = line.replace(/#.*/, "").trim();
      if (dir.startsWith("/")) dirs.push(dir);
    }
  }
  return dirs;
}

/**
 * The library dirs searched on a node of `arch`, before those its
 * `ld.so.conf` adds.
 *
 * @param arch Deno's `Deno.build.arch` value (`x86_64`, `aarch64`).
 * @returns Absolute dirs, the multiarch ones first.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { standardLibraryDirs } from "./host_check.ts";
 * assert.ok(standardLibraryDirs("x86_64").includes("/usr/lib/x86_64-linux-gnu"));
 * assert.ok(standardLibraryDirs("aarch64").includes("/usr/lib64"));
 * ```
 */
export function standardLibraryDirs(arch: string): string[] {
  const triplet = MULTIARCH[arch];
  return [
    ...triplet === undefined ? [] : [`/lib/${triplet}`, `/usr/lib/${triplet}`],
    "/lib",
    "/usr/lib",
    "/lib64",
    "/usr/lib64",
    "/usr/local/lib",
  ];
}

/**
 * Checks that the node under `root` has what the plugins load and run from
 * it (see the module's doc).
 *
 * @param root The node's root (`/` on the node itself, `/proc/1/root` from
 *   a `hostPID` pod).
 * @param options The node's architecture.
 * @returns What it lacks, in a fixed order (empty: nothing).
 * @throws {Deno.errors.PermissionDenied} When `root` cannot be read (a pod
 *   without `hostPID` or privileges).
 * @throws {Deno.errors.NotFound} When `root` is no directory.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkHost } from "./host_check.ts";
 * const root = await Deno.makeTempDir();
 * const lacks = await checkHost(root, { arch: "x86_64" });
 * assert.deepEqual(lacks.map((l) => l.name).slice(0, 2), [
 *   "libnl-3.so.200",
 *   "libnl-route-3.so.200",
 * ]);
 * await Deno.remove(root);
 * ```
 */
export async function checkHost(
  root: string,
  options: HostCheckOptions = {},
): Promise<HostLack[]> {
  const base = root.replace(/\/+$/, "");
  if (!(await Deno.stat(root)).isDirectory) {
    throw new Deno.errors.NotFound(
      `Cannot check the host: "${root}" is no directory`,
    );
  }
  const arch = options.arch ?? Deno.build.arch;
  const libDirs = [
    ...standardLibraryDirs(arch),
    ...await ldConfDirs(base),
  ];
  async function inAny(dirs: readonly string[], name: string) {
    for (const d of dirs) {
      if (await isFileUnder(base, `${d}/${name}`)) return true;
    }
    return false;
  }
  const lacks: HostLack[] = [];
  for (const lib of [...LIBNL, ...GLIBC]) {
    if (!await inAny(libDirs, lib.name)) lacks.push(lib);
  }
  for (const program of EBTABLES) {
    if (!await inAny(EBTABLES_DIRS, program.name)) lacks.push(program);
  }
  const loader = LOADER[arch];
  if (loader !== undefined && !await isFileUnder(base, loader)) {
    lacks.push({ name: loader, debian: "libc6", azureLinux: "glibc" });
  }
  return lacks;
}

/**
 * The message of a failed {@link checkHost}: what the node lacks, why it
 * matters, and the packages to install.
 *
 * @param lacks What {@link checkHost} returned (not empty).
 * @returns One line, lower case first, without a final period.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostLackMessage } from "./host_check.ts";
 * const msg = hostLackMessage([
 *   { name: "ebtables", debian: "ebtables", azureLinux: "ebtables-legacy" },
 * ]);
 * assert.match(msg, /apt-get install ebtables; Azure Linux: tdnf install ebtables-legacy/);
 * ```
 */
export function hostLackMessage(lacks: readonly HostLack[]): string {
  const list = (key: "debian" | "azureLinux") =>
    [...new Set(lacks.map((l) => l[key]))].join(" ");
  return `the node lacks ${
    lacks.map((l) => l.name).join(", ")
  }, which the plugins load or run from the node itself whenever the agent does not answer (before it starts, during a rollout, after a crash); install ${
    lacks.length === 1 ? "it" : "them"
  } on the node (Debian/Ubuntu: apt-get install ${
    list("debian")
  }; Azure Linux: tdnf install ${list("azureLinux")})`;
}
