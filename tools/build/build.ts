/**
 * Builds `dist/`: a compiled binary per plugin when `deno compile` can get
 * its `denort` runtime, otherwise a minified bundle plus a `#!/bin/sh`
 * launcher (docs/STYLE.md section 10).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  bundleChunks,
  chunkName,
  compileFlags,
  renderLauncher,
  v8FlagArgs,
} from "./launcher.ts";
import { lazyNodeUtil } from "./lazy_node_util.ts";
import { type BuildTarget, DEFAULT_DENO_DIR, TARGETS } from "./targets.ts";

const log = getLogger(["vnet", "build"]);

/** The Deno version whose `denort` a compile needs. */
const DENORT_TARGET = "x86_64-unknown-linux-gnu";

/** How long a compile attempt may take before we give up on it. */
const COMPILE_TIMEOUT_MS = 60_000;

/** Options of {@link build}. */
export interface BuildOptions {
  /** Repository root (default: two levels above this file). */
  root?: string;
  /** Output directory (default `<root>/dist`). */
  outDir?: string;
  /** `DENO_DIR` baked into the launchers (default /var/lib/azure-vnet/deno). */
  denoDir?: string;
  /** Only try `deno compile`; fail instead of falling back. */
  compileOnly?: boolean;
  /** Skip the compile attempt and build launchers directly. */
  noCompile?: boolean;
  /** The targets (default {@link TARGETS}); tests pass fixtures. */
  targets?: readonly BuildTarget[];
  /** Grant `--allow-all` (see `TargetPermissions.all`). */
  allowAll?: boolean;
  /** The deno binary to build with and pin (default `Deno.execPath()`). */
  denoPath?: string;
  /**
   * The deno path written into launchers, when it differs from the build's
   * (an image that installs deno elsewhere). No pre-warm is done then.
   */
  launcherDenoPath?: string;
}

/** What was built for one target. */
export interface BuiltArtifact {
  /** Target name. */
  name: string;
  /** "compiled" (a real executable) or "launcher" (sh + bundle). */
  kind: "compiled" | "launcher";
  /** Absolute paths of the files written. */
  files: string[];
  /** Why compile was not used, for a launcher. */
  compileSkipped?: string;
}

/** Where a local `denort` can come from, or why none is available. */
export interface DenortProbe {
  /** True when a compile can run offline. */
  available: boolean;
  /** The source found, or why none. */
  reason: string;
}

function denoDirOfEnv(): string {
  const env = Deno.env.get("DENO_DIR");
  if (env !== undefined && env !== "") return env;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME") ?? "/root";
  return `${xdg ?? `${home}/.cache`}/deno`;
}

function realPathOrUndefined(path: string): string | undefined {
  try {
    return Deno.realPathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * Checks whether `deno compile` can find a `denort` without downloading it.
 *
 * `DENORT_BIN` wins when it names a file other than the deno CLI itself
 * (pointing it at the CLI yields a useless 98 MB copy of the CLI); else the
 * cached `$DENO_DIR/dl/release/v<version>/denort-<target>.zip` is used.
 *
 * @param denoPath The deno CLI that would compile.
 * @returns Whether a local denort exists, and which.
 *
 * @example Usage
 * ```ts
 * import { probeDenort } from "./build.ts";
 * const probe = probeDenort(Deno.execPath());
 * console.assert(typeof probe.reason === "string");
 * ```
 */
export function probeDenort(denoPath: string): DenortProbe {
  const bin = Deno.env.get("DENORT_BIN");
  if (bin !== undefined && bin !== "") {
    const real = realPathOrUndefined(bin);
    if (real === undefined) {
      return { available: false, reason: `DENORT_BIN "${bin}" not found` };
    }
    if (real === realPathOrUndefined(denoPath)) {
      return {
        available: false,
        reason: `DENORT_BIN "${bin}" is the deno CLI, not denort`,
      };
    }
    return { available: true, reason: `DENORT_BIN "${bin}"` };
  }
  const zip =
    `${denoDirOfEnv()}/dl/release/v${Deno.version.deno}/denort-${DENORT_TARGET}.zip`;
  if (realPathOrUndefined(zip) !== undefined) {
    return { available: true, reason: `cached "${zip}"` };
  }
  return {
    available: false,
    reason: `no DENORT_BIN and no cached "${zip}"`,
  };
}

async function runDeno(
  denoPath: string,
  args: string[],
  opts: { cwd: string; timeoutMs?: number; env?: Record<string, string> },
): Promise<{ ok: boolean; stderr: string }> {
  const out = await new Deno.Command(denoPath, {
    args,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...(opts.env === undefined ? {} : { env: opts.env }),
    ...(opts.timeoutMs === undefined
      ? {}
      : { signal: AbortSignal.timeout(opts.timeoutMs) }),
  }).output();
  const stderr = new TextDecoder().decode(out.stderr)
    // deno-lint-ignore no-control-regex
    .replace(/\x1b\[[0-9;]*m/g, "");
  return { ok: out.success, stderr };
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !l.startsWith("Stack backtrace") && !/^\d+: <unknown>$/.test(l)
  );
  return lines.slice(-1)[0] ?? "no output";
}

async function tryCompile(
  target: BuildTarget,
  ctx: { root: string; outDir: string; denoPath: string },
): Promise<string | undefined> {
  const out = `${ctx.outDir}/${target.name}`;
  const args = [
    "compile",
    "--target",
    DENORT_TARGET,
    "--no-prompt",
    ...compileFlags(target.permissions),
    ...v8FlagArgs(target.v8Flags),
    "--output",
    out,
    target.entry,
  ];
  try {
    const res = await runDeno(ctx.denoPath, args, {
      cwd: ctx.root,
      timeoutMs: COMPILE_TIMEOUT_MS,
    });
    if (res.ok) return undefined;
    return `deno compile failed: ${lastLine(res.stderr)}`;
  } catch (err) {
    if (err instanceof DOMException && err.name === "TimeoutError") {
      return `deno compile timed out after ${COMPILE_TIMEOUT_MS} ms`;
    }
    throw err;
  }
}

/**
 * Bundles a target with code splitting (#14): `<name>.js` holds what its
 * entry imports statically, each dynamic `import()` becomes a chunk of its
 * own (`<name>.<chunk>.js`) that is read and compiled only when that import
 * runs. A thin plugin's start thus loads only the forwarder, its fallback
 * the full plugin, and an agent without a warm pool never the Azure SDK.
 * The bundler's chunk names are renamed to {@link chunkName} and the
 * imports between them rewritten; stale chunks of an earlier build go.
 *
 * @returns The bundle files written, entry first.
 */
async function bundleSplit(
  target: BuildTarget,
  ctx: { root: string; outDir: string; denoPath: string },
): Promise<string[]> {
  const tmp = await Deno.makeTempDir({
    dir: ctx.outDir,
    prefix: `.${target.name}-bundle-`,
  });
  try {
    const res = await runDeno(ctx.denoPath, [
      "bundle",
      "--platform",
      "deno",
      "--minify",
      "--code-splitting",
      "--outdir",
      tmp,
      target.entry,
    ], { cwd: ctx.root });
    if (!res.ok) {
      throw new Error(
        `Cannot bundle "${target.entry}": ${lastLine(res.stderr)}`,
      );
    }
    const base = target.entry.slice(target.entry.lastIndexOf("/") + 1);
    const entry = base.replace(/\.[cm]?[jt]sx?$/, ".js");
    const names = new Map<string, string>();
    for await (const e of Deno.readDir(tmp)) {
      if (!e.isFile || !e.name.endsWith(".js")) {
        throw new Error(
          `Cannot bundle "${target.entry}": unexpected output "${e.name}"`,
        );
      }
      names.set(
        e.name,
        e.name === entry ? `${target.name}.js` : chunkName(target.name, e.name),
      );
    }
    if (!names.has(entry)) {
      throw new Error(`Cannot bundle "${target.entry}": no "${entry}" written`);
    }
    for (const stale of bundleChunks(ctx.outDir, target.name)) {
      removeIfExists(`${ctx.outDir}/${stale}`);
    }
    const files: string[] = [];
    for (const [from, to] of names) {
      let text = await Deno.readTextFile(`${tmp}/${from}`);
      for (const [chunk, renamed] of names) {
        for (const q of ['"', "'"]) {
          text = text.replaceAll(`${q}./${chunk}${q}`, `${q}./${renamed}${q}`);
        }
      }
      const lazy = lazyNodeUtil(text);
      if (lazy.names.length > 0) {
        log.info("{name}: node:util made lazy ({count} import)", {
          name: to,
          count: lazy.names.length,
        });
      }
      const path = `${ctx.outDir}/${to}`;
      await Deno.writeTextFile(path, lazy.text);
      await Deno.chmod(path, 0o644);
      files.push(path);
    }
    const main = `${ctx.outDir}/${target.name}.js`;
    return [main, ...files.filter((f) => f !== main)];
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

async function buildLauncher(
  target: BuildTarget,
  ctx: {
    root: string;
    outDir: string;
    denoPath: string;
    denoDir: string;
    launcherDeno: string;
  },
): Promise<string[]> {
  const bundle = await bundleSplit(target, ctx);
  const sh = `${ctx.outDir}/${target.name}`;
  await Deno.writeTextFile(
    sh,
    renderLauncher({
      bundleName: `${target.name}.js`,
      denoPath: ctx.launcherDeno,
      denoDir: ctx.denoDir,
      permissions: target.permissions,
      ...(target.v8Flags === undefined ? {} : { v8Flags: target.v8Flags }),
    }),
  );
  await Deno.chmod(sh, 0o755);
  return [sh, ...bundle];
}

/**
 * Runs a launcher once with an empty environment so the pinned `DENO_DIR`
 * holds a warm V8 code cache (the plugin prints its usage error and exits).
 *
 * The code cache is keyed by the bundle's path, so the installer warms the
 * installed copy again (its VERSION check does that).
 *
 * @param launcher Absolute path of the launcher.
 * @returns Nothing; the exit code of the run is ignored.
 */
export async function prewarm(launcher: string): Promise<void> {
  await new Deno.Command(launcher, {
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
}

function removeIfExists(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/**
 * Builds every target into the output directory.
 *
 * For each target: when a local `denort` exists (see {@link probeDenort}),
 * or always with `compileOnly`, run `deno compile --target
 * x86_64-unknown-linux-gnu` with the target's fixed permissions. Otherwise,
 * or when the compile fails, write `<name>.js` and its chunks (`deno bundle
 * --platform deno --minify --code-splitting`, see {@link bundleSplit}, with
 * `node:util` default imports made lazy by {@link lazyNodeUtil}) and the
 * `<name>` launcher, create the `DENO_DIR` and pre-warm it.
 *
 * @param options Output and `DENO_DIR` paths, mode flags, targets.
 * @returns One artifact record per target.
 * @throws {Deno.errors.NotFound} When an entry module does not exist.
 * @throws {Error} When compile fails with `compileOnly`, or bundling fails.
 *
 * @example Usage
 * ```ts ignore
 * import { build } from "./build.ts";
 * const built = await build({ outDir: "/tmp/dist", noCompile: true });
 * ```
 */
export async function build(
  options: BuildOptions = {},
): Promise<BuiltArtifact[]> {
  const root = options.root ??
    decodeURIComponent(new URL("../../", import.meta.url).pathname)
      .replace(/\/$/, "");
  const outDir = options.outDir ?? `${root}/dist`;
  const denoDir = options.denoDir ?? DEFAULT_DENO_DIR;
  const denoPath = options.denoPath ?? Deno.execPath();
  const targets = (options.targets ?? TARGETS).map((t) =>
    options.allowAll === true
      ? { ...t, permissions: { ...t.permissions, all: true } }
      : t
  );
  for (const t of targets) {
    try {
      await Deno.stat(`${root}/${t.entry}`);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      throw new Deno.errors.NotFound(
        `Cannot build "${t.name}": entry "${t.entry}" not found`,
        { cause: err },
      );
    }
  }
  await Deno.mkdir(outDir, { recursive: true });
  const probe = probeDenort(denoPath);
  const built: BuiltArtifact[] = [];
  for (const t of targets) {
    const ctx = { root, outDir, denoPath, denoDir };
    const launcherDeno = options.launcherDenoPath ?? denoPath;
    let skipped: string | undefined = options.noCompile === true
      ? "compile disabled (--no-compile)"
      : undefined;
    if (skipped === undefined && !probe.available && !options.compileOnly) {
      skipped = `no local denort (${probe.reason})`;
    }
    if (skipped === undefined) {
      log.info("Compiling {name} ({reason})", {
        name: t.name,
        reason: probe.reason,
      });
      skipped = await tryCompile(t, ctx);
      if (skipped === undefined) {
        removeIfExists(`${outDir}/${t.name}.js`);
        for (const chunk of bundleChunks(outDir, t.name)) {
          removeIfExists(`${outDir}/${chunk}`);
        }
        built.push({
          name: t.name,
          kind: "compiled",
          files: [`${outDir}/${t.name}`],
        });
        continue;
      }
      if (options.compileOnly) {
        throw new Error(`Cannot compile "${t.name}": ${skipped}`);
      }
    }
    log.info("Building launcher for {name}: {reason}", {
      name: t.name,
      reason: skipped,
    });
    const files = await buildLauncher(t, { ...ctx, launcherDeno });
    if (launcherDeno === denoPath) {
      await Deno.mkdir(denoDir, { recursive: true });
      await prewarm(files[0] ?? "");
    }
    built.push({
      name: t.name,
      kind: "launcher",
      files,
      compileSkipped: skipped,
    });
  }
  return built;
}
