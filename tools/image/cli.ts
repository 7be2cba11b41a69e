/**
 * Command line of `deno task image`.
 *
 * @module
 */
import { parseCli } from "../_cli.ts";
import { buildImage, ensureHostPackages, type ImageOptions } from "./image.ts";

const USAGE = `usage: deno task image [options]

Builds the DaemonSet image (deploy/Containerfile) with podman: a Debian
bookworm base made here with mmdebstrap from this machine's apt mirror
(reused while its package list, sources and the archive's package indexes
are unchanged: any package update makes a new one), plus the pinned deno, dist/
(launchers that exec /opt/azure-vnet/deno), the bundled installer and the
entrypoint. Tagged as the manifest's image under localhost/. Installs
podman, mmdebstrap and runc with apt-get when missing (root).

options:
  --rebuild-base       make the base again even when it exists
  -h, --help           this text`;

const OPTIONS = {
  "rebuild-base": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function write(stream: "out" | "err", text: string): void {
  const s = stream === "out" ? Deno.stdout : Deno.stderr;
  s.writeSync(new TextEncoder().encode(text));
}

/**
 * Runs the image command line.
 *
 * @param args The arguments (without the program name).
 * @returns 0 built, 1 failed (message on stderr), 2 usage error.
 *
 * @example Usage
 * ```ts ignore
 * import { runImageCli } from "./cli.ts";
 * Deno.exit(await runImageCli([]));
 * ```
 */
export async function runImageCli(args: readonly string[]): Promise<number> {
  const parsed = parseCli(args, { usage: USAGE, options: OPTIONS });
  if ("exitCode" in parsed) return parsed.exitCode;
  const v = parsed.values;
  if (v.help === true) {
    write("out", `${USAGE}\n`);
    return 0;
  }
  const options: ImageOptions = {};
  if (v["rebuild-base"] === true) options.rebuildBase = true;
  try {
    for (const p of await ensureHostPackages()) {
      write("out", `installed ${p}\n`);
    }
    const r = await buildImage(options);
    if (r.baseWarning !== undefined) {
      write("err", `warning: ${r.baseWarning}\n`);
    }
    write(
      "out",
      `base ${r.base} (${r.baseBuilt ? "made" : "reused"})\n` +
        `image ${r.image}: ${(r.size / 1e6).toFixed(1)} MB, built in ${
          r.seconds.toFixed(1)
        } s\n`,
    );
    return 0;
  } catch (err) {
    const messages: string[] = [];
    for (let e: unknown = err; e !== undefined; e = (e as Error).cause) {
      messages.push(e instanceof Error ? e.message : String(e));
      if (!(e instanceof Error)) break;
    }
    write("err", `Image build failed: ${messages.join(": ")}\n`);
    return 1;
  }
}
