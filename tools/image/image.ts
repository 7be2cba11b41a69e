/**
 * `deno task image`: builds the DaemonSet image with podman, from a Debian
 * bookworm base made on this machine (mmdebstrap from the machine's own apt
 * mirror, then `podman import`), never from a registry.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { build } from "../build/build.ts";
import { DAEMONSET_PATH, localImage, manifestImage } from "./daemonset.ts";

const log = getLogger(["vnet", "image"]);

/** Where the image puts the pinned deno on the node; the launchers exec it. */
export const NODE_DENO_PATH = "/opt/azure-vnet/deno";
/** The Debian release of the base. */
export const BASE_SUITE = "bookworm";
/** The plugins' runtime packages, the only ones added to the base. */
export const RUNTIME_PACKAGES: readonly string[] = [
  "libnl-3-200",
  "libnl-route-3-200",
  "ebtables",
  // ebtables-nft (the nf_tables backend the plugins use) is in iptables.
  "iptables",
];
/** Repository name of the local base image. */
export const BASE_REPOSITORY = "localhost/azure-vnet-base";
/** What `deno task image` needs on the build machine (Debian packages). */
export const HOST_PACKAGES: readonly string[] = [
  "podman",
  "mmdebstrap",
  "runc",
];
/** Commands that tell whether {@link HOST_PACKAGES} are installed. */
const HOST_COMMANDS: readonly string[] = ["podman", "mmdebstrap", "runc"];

/**
 * The Debian mirror lines (one-line style) of `suite` in apt sources text:
 * deb822 stanzas (`*.sources`) and one-line entries (`*.list`) whose suite
 * is `suite` or starts with `suite-` (updates, security). `deb-src`,
 * disabled stanzas and other suites are left out.
 *
 * @param text The sources files' text, concatenated.
 * @param suite The release, such as `bookworm`.
 * @returns Lines such as `deb [signed-by=/k.gpg] http://m/debian bookworm main`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { aptMirrors } from "./image.ts";
 * const text = "Types: deb\nURIs: http://m/debian\nSuites: bookworm\nComponents: main\n";
 * assert.deepEqual(aptMirrors(text, "bookworm"), ["deb http://m/debian bookworm main"]);
 * ```
 */
export function aptMirrors(text: string, suite: string): string[] {
  const wanted = (s: string) => s === suite || s.startsWith(`${suite}-`);
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(line.trim());
    if (m !== null && wanted(m[3] ?? "")) {
      out.push(`deb ${m[1] ?? ""}${m[2]} ${m[3]} ${m[4]?.trim()}`);
    }
  }
  for (const stanza of text.split(/\n\s*\n/)) {
    const field = (name: string) =>
      new RegExp(`^${name}:[ \\t]*(.*)$`, "mi").exec(stanza)?.[1]?.trim() ??
        "";
    if (!field("Types").split(/\s+/).includes("deb")) continue;
    if (field("Enabled").toLowerCase() === "no") continue;
    const signed = field("Signed-By");
    const opts = signed.startsWith("/") ? `[signed-by=${signed}] ` : "";
    for (const uri of field("URIs").split(/\s+/).filter(Boolean)) {
      for (const s of field("Suites").split(/\s+/).filter(wanted)) {
        out.push(`deb ${opts}${uri} ${s} ${field("Components")}`);
      }
    }
  }
  return out;
}

/**
 * The mmdebstrap command line of the base: variant `essential` (no apt),
 * merged `/usr` without the usrmerge package (which would pull in perl), no
 * docs, man pages or locales, plus {@link RUNTIME_PACKAGES}.
 *
 * @param mirrors Lines from {@link aptMirrors}.
 * @param out The tarball to write.
 * @returns The arguments after `mmdebstrap`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { mmdebstrapArgs } from "./image.ts";
 * const args = mmdebstrapArgs(["deb http://m/debian bookworm main"], "/tmp/b.tar");
 * assert.ok(args.includes("--variant=essential"));
 * assert.equal(args.at(-1), "deb http://m/debian bookworm main");
 * ```
 */
export function mmdebstrapArgs(
  mirrors: readonly string[],
  out: string,
): string[] {
  return [
    "--quiet",
    "--variant=essential",
    "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
    `--include=${RUNTIME_PACKAGES.join(",")}`,
    ...["man", "doc", "locale", "info", "lintian", "bug"].map((d) =>
      `--dpkgopt=path-exclude=/usr/share/${d}/*`
    ),
    "--format=tar",
    BASE_SUITE,
    out,
    ...mirrors,
  ];
}

/** One apt source line of {@link aptMirrors}, taken apart. */
export interface AptSource {
  /** The archive's URI, such as `http://deb.debian.org/debian`. */
  uri: string;
  /** The suite, such as `bookworm-security`. */
  suite: string;
  /** Its components, such as `main`. */
  components: string[];
}

/**
 * Takes a line of {@link aptMirrors} apart.
 *
 * @param line Such as `deb [signed-by=/k.gpg] http://m/debian bookworm main`.
 * @returns Its URI, suite and components.
 * @throws {SyntaxError} For a line that is no `deb` source.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAptSource } from "./image.ts";
 * assert.deepEqual(parseAptSource("deb [arch=amd64] http://m/d bookworm main contrib"), {
 *   uri: "http://m/d",
 *   suite: "bookworm",
 *   components: ["main", "contrib"],
 * });
 * ```
 */
export function parseAptSource(line: string): AptSource {
  const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(line.trim());
  if (m === null) {
    throw new SyntaxError(`Cannot read apt source "${line}"`);
  }
  return {
    uri: (m[1] ?? "").replace(/\/+$/, ""),
    suite: m[2] ?? "",
    components: (m[3] ?? "").split(/\s+/).filter(Boolean),
  };
}

/**
 * The `Packages` indexes of a suite's `Release` (or `InRelease`) file: for
 * each component, the SHA-256 of its `<component>/binary-<arch>/Packages`
 * (the uncompressed index, which the file lists whether or not the
 * archive serves it uncompressed). They change whenever a package of the
 * suite does, and only then.
 *
 * @param release The `Release` or `InRelease` text.
 * @param options The source's `components` and the Debian `arch`.
 * @returns Lines `<component>/binary-<arch>/Packages <sha256>`.
 * @throws {SyntaxError} When a component's index is not listed.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { releaseIndexes } from "./image.ts";
 * const release = "Suite: bookworm\nSHA256:\n 0a1b 32757 main/binary-amd64/Packages\n 9f8e 6924 main/binary-amd64/Packages.xz\n";
 * assert.deepEqual(
 *   releaseIndexes(release, { components: ["main"], arch: "amd64" }),
 *   ["main/binary-amd64/Packages 0a1b"],
 * );
 * ```
 */
export function releaseIndexes(
  release: string,
  options: { components: readonly string[]; arch: string },
): string[] {
  const hashes = new Map<string, string>();
  let inSha256 = false;
  for (const line of release.split("\n")) {
    if (!line.startsWith(" ")) {
      inSha256 = line.trim() === "SHA256:";
      continue;
    }
    const [hash, , path] = line.trim().split(/\s+/);
    if (inSha256 && hash !== undefined && path !== undefined) {
      hashes.set(path, hash);
    }
  }
  return options.components.map((c) => {
    const path = `${c}/binary-${options.arch}/Packages`;
    const hash = hashes.get(path);
    if (hash === undefined) {
      throw new SyntaxError(`Cannot find "${path}" in the Release file`);
    }
    return `${path} ${hash}`;
  });
}

/** Debian's name of this machine's architecture. */
function debianArch(): string {
  const arch = ({ "x86_64": "amd64", "aarch64": "arm64" } as Record<
    string,
    string | undefined
  >)[Deno.build.arch];
  if (arch === undefined) {
    throw new RangeError(`Cannot build for "${Deno.build.arch}"`);
  }
  return arch;
}

/**
 * Reads the `Packages` index hashes ({@link releaseIndexes}) of every
 * source from its archive: `dists/<suite>/InRelease`, else `Release`.
 *
 * @param mirrors Lines from {@link aptMirrors}.
 * @param options An injectable `fetch` and the Debian `arch`.
 * @returns Lines `<uri> <suite> <component>/binary-<arch>/Packages <sha256>`.
 * @throws {Error} When an archive does not answer with a Release file.
 */
export async function archiveIndexes(
  mirrors: readonly string[],
  options: { fetch?: typeof fetch; arch?: string } = {},
): Promise<string[]> {
  const get = options.fetch ?? fetch;
  const arch = options.arch ?? debianArch();
  const out: string[] = [];
  for (const line of mirrors) {
    const src = parseAptSource(line);
    let text: string | undefined;
    for (const name of ["InRelease", "Release"]) {
      const url = `${src.uri}/dists/${src.suite}/${name}`;
      const res = await get(url, { signal: AbortSignal.timeout(20_000) });
      if (res.ok) {
        text = await res.text();
        break;
      }
      await res.body?.cancel();
    }
    if (text === undefined) {
      throw new Error(
        `Cannot read the Release file of "${src.suite}" at "${src.uri}"`,
      );
    }
    for (const index of releaseIndexes(text, { ...src, arch })) {
      out.push(`${src.uri} ${src.suite} ${index}`);
    }
  }
  return out;
}

/**
 * The tag of a base: the suite, a hash of the mmdebstrap command line (the
 * package list and the sources) and a hash of the archive's package
 * indexes when it is made ({@link archiveIndexes}), so the same command
 * against the same archive state reuses the base, and any package update
 * in the sources makes a new one.
 *
 * @param command The mmdebstrap arguments (without the output path).
 * @param indexes The lines of {@link archiveIndexes}.
 * @returns Such as `bookworm-0123456789ab-ba9876543210`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { baseTag } from "./image.ts";
 * const a = await baseTag(["--variant=essential"], ["u bookworm main/binary-amd64/Packages 0a"]);
 * const b = await baseTag(["--variant=essential"], ["u bookworm main/binary-amd64/Packages 0b"]);
 * assert.match(a, /^bookworm-[0-9a-f]{12}-[0-9a-f]{12}$/);
 * assert.equal(a.split("-")[1], b.split("-")[1]);
 * assert.notEqual(a, b);
 * ```
 */
export async function baseTag(
  command: readonly string[],
  indexes: readonly string[],
): Promise<string> {
  return `${BASE_SUITE}-${(await sha256(command.join("\n"))).slice(0, 12)}-${
    (await sha256(indexes.join("\n"))).slice(0, 12)
  }`;
}

/** What {@link buildImage} did. */
export interface ImageReport {
  /** The local image reference, such as `localhost/azure-vnet-deno:0.1.0`. */
  image: string;
  /** The base image reference. */
  base: string;
  /** Whether the base was made now (false: reused). */
  baseBuilt: boolean;
  /**
   * Set when the base was reused without knowing the archive's state (the
   * apt archive unreadable): why, so the CLI can say so.
   */
  baseWarning?: string;
  /** The image's size in bytes (`podman image inspect`). */
  size: number;
  /** Wall time of the whole build, in seconds. */
  seconds: number;
}

/** Options of {@link buildImage}. */
export interface ImageOptions {
  /** The repository root (default: this checkout). */
  root?: string;
  /** Make the base again even when it exists. */
  rebuildBase?: boolean;
}

async function run(
  cmd: string,
  args: readonly string[],
  options: { cwd?: string } = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...options,
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    const err = dec.decode(out.stderr).trim().split("\n").slice(-5).join("\n");
    throw new Error(`Cannot run ${cmd} ${args.join(" ")}: ${err}`);
  }
  return dec.decode(out.stdout);
}

async function hasCommand(name: string): Promise<boolean> {
  const out = await new Deno.Command("sh", {
    args: ["-c", `command -v ${name}`],
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/**
 * Installs {@link HOST_PACKAGES} with apt-get when a command is missing
 * (Debian 12, root).
 *
 * @returns The packages installed (empty when all were there).
 * @throws {Error} When apt-get fails.
 */
export async function ensureHostPackages(): Promise<string[]> {
  const missing: string[] = [];
  for (const [i, c] of HOST_COMMANDS.entries()) {
    if (!(await hasCommand(c))) missing.push(HOST_PACKAGES[i] ?? c);
  }
  if (missing.length === 0) return [];
  log.info("Installing {packages} with apt-get", { packages: missing });
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await new Deno.Command("apt-get", { args: ["update", "-qq"], env }).output();
  const out = await new Deno.Command("apt-get", {
    args: ["install", "-y", "-qq", "--no-install-recommends", ...missing],
    env,
    stdout: "null",
  }).output();
  if (!out.success) {
    throw new Error(`Cannot install ${missing.join(" ")} with apt-get`);
  }
  return missing;
}

async function sourcesText(): Promise<string> {
  const files = ["/etc/apt/sources.list"];
  try {
    for await (const e of Deno.readDir("/etc/apt/sources.list.d")) {
      if (/\.(list|sources)$/.test(e.name)) {
        files.push(`/etc/apt/sources.list.d/${e.name}`);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const parts: string[] = [];
  for (const f of files.sort()) {
    try {
      parts.push(await Deno.readTextFile(f));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
  }
  return parts.join("\n\n");
}

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

async function imageId(ref: string): Promise<string | undefined> {
  const out = await new Deno.Command("podman", {
    args: ["image", "inspect", "--format", "{{.Id}}", ref],
    stdout: "piped",
    stderr: "null",
  }).output();
  return out.success ? new TextDecoder().decode(out.stdout).trim() : undefined;
}

/**
 * The newest local base made by the same command line (tag prefix
 * `<suite>-<command hash>-`), if any.
 */
async function newestBase(prefix: string): Promise<string | undefined> {
  const out = await run("podman", [
    ...["images", "--format", "json", BASE_REPOSITORY],
  ]);
  const images = JSON.parse(out) as { Names?: string[]; Created?: number }[];
  let best: { name: string; created: number } | undefined;
  for (const image of images) {
    for (const name of image.Names ?? []) {
      if (!name.startsWith(`${BASE_REPOSITORY}:${prefix}`)) continue;
      const created = image.Created ?? 0;
      if (best === undefined || created > best.created) {
        best = { name, created };
      }
    }
  }
  return best?.name;
}

/**
 * Makes the base image unless one made from the same mmdebstrap command
 * line against the same state of the archive exists ({@link baseTag}): the
 * packages of the sources are read from their Release files first, so an
 * update of any of them (a security fix) makes a new base. When the
 * archive cannot be read, the newest base of the same command line is
 * reused (with a warning), so a build without the mirror still works.
 *
 * @param options `rebuildBase` forces a new one; an injectable `fetch`.
 * @returns The base reference, whether it was made now, and a warning
 *   when it was reused without the archive.
 * @throws {Error} When no bookworm mirror is configured, mmdebstrap or
 *   podman fails, or the archive cannot be read and no base exists.
 */
export async function ensureBase(
  options: { rebuildBase?: boolean; fetch?: typeof fetch } = {},
): Promise<{ base: string; built: boolean; warning?: string }> {
  const mirrors = aptMirrors(await sourcesText(), BASE_SUITE);
  if (mirrors.length === 0) {
    throw new Error(`Cannot make the base: no ${BASE_SUITE} apt source`);
  }
  const command = mmdebstrapArgs(mirrors, "");
  let indexes: string[];
  try {
    indexes = await archiveIndexes(
      mirrors,
      options.fetch === undefined ? {} : { fetch: options.fetch },
    );
  } catch (err) {
    const prefix = (await baseTag(command, [])).replace(/[0-9a-f]+$/, "");
    const reused = await newestBase(prefix);
    if (reused === undefined || options.rebuildBase === true) {
      throw new Error("Cannot make the base: the apt archive is unreadable", {
        cause: err,
      });
    }
    const warning = `cannot read the apt archive (${
      err instanceof Error ? err.message : String(err)
    }): reusing ${reused}, which may lack package updates`;
    log.warn("{warning}", { warning });
    return { base: reused, built: false, warning };
  }
  const base = `${BASE_REPOSITORY}:${await baseTag(command, indexes)}`;
  if (options.rebuildBase !== true && (await imageId(base)) !== undefined) {
    return { base, built: false };
  }
  const dir = await Deno.makeTempDir({ prefix: "azure-vnet-base-" });
  try {
    const tar = `${dir}/base.tar`;
    log.info("Making {base} with mmdebstrap", { base });
    await run("mmdebstrap", mmdebstrapArgs(mirrors, tar));
    await run("podman", ["import", "--quiet", tar, base]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return { base, built: true };
}

/**
 * Builds the image: the base ({@link ensureBase}), then a context of the
 * pinned deno, `dist/` (launchers that exec {@link NODE_DENO_PATH}), the
 * bundled installer and the entrypoint, then `podman build --pull=never
 * --network=none -f deploy/Containerfile`, tagged with the manifest's image
 * under `localhost/`. The image it replaces under that tag is removed.
 *
 * @param options Repository root, base rebuild.
 * @returns What was built, its size and the time taken.
 * @throws {Error} When a step fails.
 *
 * @example Usage
 * ```ts ignore
 * import { buildImage } from "./image.ts";
 * const r = await buildImage();
 * console.log(r.image, r.size);
 * ```
 */
export async function buildImage(
  options: ImageOptions = {},
): Promise<ImageReport> {
  const started = performance.now();
  const root = options.root ??
    decodeURIComponent(new URL("../../", import.meta.url).pathname)
      .replace(/\/$/, "");
  const image = localImage(
    manifestImage(await Deno.readTextFile(`${root}/${DAEMONSET_PATH}`)),
  );
  const { base, built, warning } = await ensureBase(options);
  const ctx = await Deno.makeTempDir({ prefix: "azure-vnet-image-" });
  try {
    await build({
      root,
      outDir: `${ctx}/dist`,
      noCompile: true,
      launcherDenoPath: NODE_DENO_PATH,
    });
    await run(Deno.execPath(), [
      ...["bundle", "--platform", "deno", "--minify"],
      ...["--output", `${ctx}/installer.js`, "tools/installer/main.ts"],
    ], { cwd: root });
    await Deno.copyFile(Deno.execPath(), `${ctx}/deno`);
    await Deno.chmod(`${ctx}/deno`, 0o755);
    await Deno.copyFile(
      `${root}/tools/installer/entrypoint.sh`,
      `${ctx}/entrypoint.sh`,
    );
    await Deno.chmod(`${ctx}/entrypoint.sh`, 0o755);
    await Deno.chmod(`${ctx}/installer.js`, 0o644);
    const old = await imageId(image);
    await run("podman", [
      ...["build", "--quiet", "--pull=never", "--network=none"],
      ...["--build-arg", `BASE=${base}`],
      ...["--label", `org.opencontainers.image.version=${image.split(":")[1]}`],
      ...["--label", `io.azure-vnet.deno=${Deno.version.deno}`],
      ...["-f", `${root}/deploy/Containerfile`, "-t", image, ctx],
    ]);
    const now = await imageId(image);
    if (old !== undefined && old !== now) {
      // The replaced image, now untagged; kept if a container still uses it.
      await run("podman", ["rmi", old]).catch(() => {});
    }
    const size = Number(
      (await run("podman", [
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        image,
      ]))
        .trim(),
    );
    return {
      image,
      base,
      baseBuilt: built,
      ...warning === undefined ? {} : { baseWarning: warning },
      size,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await Deno.remove(ctx, { recursive: true });
  }
}
