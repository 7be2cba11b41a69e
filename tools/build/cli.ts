/**
 * Command line of `deno task build`.
 *
 * @module
 */
import { parseCli } from "../_cli.ts";
import { build, type BuildOptions } from "./build.ts";
import { type BuildTarget, TARGETS } from "./targets.ts";

const USAGE = `usage: deno task build [options]
       deno task compile [options]   (same as build --compile-only)

Builds dist/azure-vnet and dist/azure-vnet-ipam: deno compile when a local
denort exists, otherwise a minified bundle (<name>.js) plus a #!/bin/sh
launcher (<name>) with a pinned, pre-warmed DENO_DIR.

options:
  --out DIR            output directory (default: <repo>/dist)
  --deno-dir DIR       DENO_DIR baked into launchers (default /var/lib/azure-vnet/deno)
  --compile-only       only deno compile; fail if it cannot
  --no-compile         skip the compile attempt; build launchers
  --deno-path PATH     deno the launchers exec (default: the deno running
                       the build; the DaemonSet image uses /opt/azure-vnet/deno)
  --allow-all          grant --allow-all instead of scoped permissions (Deno
                       refuses Deno.* file APIs on /proc and /sys otherwise)
  --entry NAME=PATH    replace the entry of target NAME (repeatable)
  --only NAME          build only target NAME (repeatable)
  -h, --help           this text`;

const OPTIONS = {
  out: { type: "string" },
  "deno-dir": { type: "string" },
  "compile-only": { type: "boolean" },
  "no-compile": { type: "boolean" },
  "allow-all": { type: "boolean" },
  "deno-path": { type: "string" },
  entry: { type: "string", multiple: true },
  only: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
} as const;

function writeOut(text: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(text));
}

function writeErr(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text));
}

function selectTargets(
  entries: readonly string[],
  only: readonly string[],
): BuildTarget[] {
  const byName = new Map(TARGETS.map((t) => [t.name, { ...t }]));
  for (const e of entries) {
    const eq = e.indexOf("=");
    const name = eq < 0 ? "" : e.slice(0, eq);
    const target = byName.get(name);
    if (target === undefined) {
      throw new RangeError(`Unknown target in --entry "${e}"`);
    }
    target.entry = e.slice(eq + 1);
  }
  for (const name of only) {
    if (!byName.has(name)) throw new RangeError(`Unknown target "${name}"`);
  }
  return [...byName.values()].filter((t) =>
    only.length === 0 || only.includes(t.name)
  );
}

/**
 * Runs the build command line.
 *
 * @param args The arguments (without the program name).
 * @returns The exit code: 0 built, 1 failed, 2 usage error.
 *
 * @example Usage
 * ```ts ignore
 * import { runBuildCli } from "./cli.ts";
 * Deno.exit(await runBuildCli(["--no-compile"]));
 * ```
 */
export async function runBuildCli(args: readonly string[]): Promise<number> {
  const parsed = parseCli(args, { usage: USAGE, options: OPTIONS });
  if ("exitCode" in parsed) return parsed.exitCode;
  const v = parsed.values;
  if (v.help === true) {
    writeOut(`${USAGE}\n`);
    return 0;
  }
  try {
    const options: BuildOptions = {
      targets: selectTargets(v.entry ?? [], v.only ?? []),
    };
    if (v.out !== undefined) options.outDir = absolute(v.out);
    if (v["deno-dir"] !== undefined) options.denoDir = absolute(v["deno-dir"]);
    if (v["compile-only"] === true) options.compileOnly = true;
    if (v["no-compile"] === true) options.noCompile = true;
    if (v["allow-all"] === true) options.allowAll = true;
    if (v["deno-path"] !== undefined) {
      options.launcherDenoPath = absolute(v["deno-path"]);
    }
    const built = await build(options);
    for (const b of built) {
      const why = b.compileSkipped === undefined
        ? ""
        : ` (${b.compileSkipped})`;
      writeOut(`${b.name}: ${b.kind}${why}\n`);
      for (const f of b.files) writeOut(`  ${f}\n`);
    }
    return 0;
  } catch (err) {
    writeErr(
      `Build failed: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return 1;
  }
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}
