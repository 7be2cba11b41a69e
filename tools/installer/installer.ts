/**
 * Installs the built plugins, the node agent (#14) and the
 * `10-azure.conflist` onto a host, optionally the agent's systemd unit, and
 * removes exactly what it installed (a manifest in the bin dir records it).
 *
 * @module
 */
import { SUPPORTED_VERSIONS } from "@vnet/cni";
import { getLogger } from "@logtape/logtape";
import { bundleChunks } from "../build/launcher.ts";
import { exists, removeIfThere, sha256 } from "./_files.ts";
import { checkHost, hostLackMessage } from "./host_check.ts";
import {
  BACKUP_SUFFIX,
  type BackupRecord,
  fileIdentity,
  makeBackup,
  planBackups,
  takeBack,
} from "./backup.ts";

const log = getLogger(["vnet", "installer"]);

/** The plugins installed, by name (`dist/<name>`). */
export const PLUGINS: readonly string[] = ["azure-vnet", "azure-vnet-ipam"];
/**
 * The node agent (#14), installed next to the plugins by default: the
 * launcher finds its bundle and the pinned deno the same way, the
 * DaemonSet already mounts the bin dir, and a runtime only executes the
 * `type`s a conflist names, so one more executable there is inert.
 */
export const AGENT = "azure-vnet-agent";
/** Name of the agent's systemd unit (`deploy/azure-vnet-agent.service`). */
export const AGENT_UNIT_NAME = "azure-vnet-agent.service";
/** Name of the conflist written into the conf dir. */
export const CONFLIST_NAME = "10-azure.conflist";
/** Name of the manifest written into the bin dir. */
export const MANIFEST_NAME = ".azure-vnet-install.json";

/** Options of the conflist. */
export interface ConflistOptions {
  /** `cniVersion` (default "1.0.0"). */
  cniVersion?: string;
  /** Host NIC to bridge (`master`); default: auto-detect by the plugin. */
  master?: string;
  /** `ipam.environment`: "azure" (NMAgent, default) or "imds". */
  ipamEnv?: string;
}

/** Options of {@link install} and {@link uninstall}. */
export interface InstallOptions extends ConflistOptions {
  /** Build output (default `<repo>/dist`). */
  distDir?: string;
  /** Where plugins go (default /opt/cni/bin). */
  binDir?: string;
  /** Where the agent goes (default: the bin dir). */
  agentDir?: string;
  /**
   * Where to write the agent's systemd unit (such as
   * `/etc/systemd/system`); default: where the earlier install wrote it,
   * if that file is still there, else no unit. The installer never runs
   * `systemctl`.
   */
  systemdDir?: string;
  /**
   * Write no unit, and remove the one an earlier install wrote (the
   * operator then disables it: see {@link UNIT_REMOVAL_STEPS}). Excludes
   * `systemdDir`.
   */
  noSystemd?: boolean;
  /** Where the conflist goes (default /etc/cni/net.d). */
  confDir?: string;
  /**
   * The node's root dir, checked before anything is written for what the
   * plugins load and run from the node (libnl, ebtables, glibc:
   * `host_check.ts`): `/` on the node, `/proc/1/root` from the DaemonSet's
   * init container. Default: no check.
   */
  hostRoot?: string;
  /**
   * Overwrite an existing conflist that differs and that the earlier
   * install did not write (its own is replaced without this); the foreign
   * one is kept aside and `--uninstall` puts it back.
   */
  force?: boolean;
}

/** What the manifest records. */
export interface InstallManifest {
  /** Format version. */
  version: 1;
  /** Files written, absolute. */
  files: string[];
  /** The conflist path and its content hash (removed only if unchanged). */
  conflist: { path: string; sha256: string };
  /**
   * Bundle chunks of the previous install that this one no longer writes,
   * absolute: kept on disk for one more install, so that a plugin or agent
   * process of the previous version that already loaded its `<name>.js` can
   * still import them; the next install (or `--uninstall`) removes them.
   * Absent in manifests of older installers.
   */
  superseded?: string[];
  /**
   * Files an earlier install wrote that this one removes once this manifest
   * is written, absolute: present while those removals run, and kept when
   * one of them failed; the next install (or `--uninstall`) removes those
   * still there. Absent in manifests of older installers.
   */
  removing?: string[];
  /**
   * Other contents of the conflist at `conflist.path` that are ours too:
   * written by an install that had not completed (the manifest written
   * before it replaced any file names the conflist it was about to write
   * and the one it replaced). Absent once an install completes.
   */
  earlierConflists?: { path: string; sha256: string }[];
  /**
   * Foreign files that were where an install wrote its own (the Go
   * plugin's binaries, another CNI's conflist under our name): each kept
   * aside as `<path>.pre-azure-vnet` before it was replaced, and renamed
   * back by `--uninstall` or by an install that no longer writes the path.
   * Written before the backups are made. Absent in manifests of older
   * installers.
   */
  backups?: BackupRecord[];
}

/** What {@link install} did. */
export interface InstallReport {
  /** Files written (absolute). */
  files: string[];
  /** Files an earlier install wrote that this one no longer does. */
  removed: string[];
  /**
   * Foreign files kept aside by this install (the paths it wrote over;
   * each backup is the path plus {@link BACKUP_SUFFIX}).
   */
  backedUp: string[];
  /**
   * Foreign files given back because this install no longer writes their
   * path.
   */
  restored: string[];
  /**
   * Chunks of the previous install kept for one more install (see
   * {@link InstallManifest.superseded}).
   */
  superseded: string[];
  /** "written", "unchanged" or "replaced". */
  conflist: "written" | "unchanged" | "replaced";
  /**
   * Conf files in the conf dir that sort before the conflist (absolute,
   * sorted): a runtime loads the first one, so it uses them instead.
   */
  shadowedBy: string[];
  /** Per plugin: "compiled" or "launcher", and the VERSION answer. */
  plugins: { name: string; kind: string; supportedVersions: string[] }[];
  /** The agent: where, "compiled" or "launcher", its `--version` line. */
  agent: { path: string; kind: string; version: string };
  /** The systemd unit written, if any. */
  unit: string | undefined;
  /**
   * True when `unit` was written because an earlier install wrote it there
   * (no `systemdDir` given), false when `systemdDir` asked for it.
   */
  unitKept: boolean;
}

/**
 * What the operator runs once the agent's unit file has been removed: the
 * installer never runs `systemctl`, and a unit that was enabled or running
 * stays so until then.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { UNIT_REMOVAL_STEPS } from "./installer.ts";
 * assert.equal(UNIT_REMOVAL_STEPS[0], "systemctl disable --now azure-vnet-agent");
 * ```
 */
export const UNIT_REMOVAL_STEPS: readonly string[] = [
  "systemctl disable --now azure-vnet-agent",
  "systemctl daemon-reload",
];

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Whether `path` is a bundle chunk of a target (`<name>.<chunk>.js`). */
function isChunk(path: string): boolean {
  const base = baseName(path);
  return base.endsWith(".js") &&
    [...PLUGINS, AGENT].some((name) =>
      base.startsWith(`${name}.`) && base !== `${name}.js`
    );
}

function dirName(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

/**
 * Renders and validates the `10-azure.conflist` document.
 *
 * @param options `cniVersion`, `master`, `ipamEnv`.
 * @returns The JSON text (2-space indented, trailing newline).
 * @throws {RangeError} For an unsupported `cniVersion`, a `master` longer
 *   than 15 bytes or an unknown IPAM environment.
 * @throws {SyntaxError} For a `master` with characters not allowed in names.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderConflist } from "./installer.ts";
 * const conf = JSON.parse(renderConflist({ master: "eth0" }));
 * assert.equal(conf.cniVersion, "1.0.0");
 * assert.equal(conf.plugins[0].ipam.type, "azure-vnet-ipam");
 * ```
 */
export function renderConflist(options: ConflistOptions = {}): string {
  const cniVersion = options.cniVersion ?? "1.0.0";
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(cniVersion)) {
    throw new RangeError(
      `Cannot use cniVersion "${cniVersion}": supported are ${
        SUPPORTED_VERSIONS.join(", ")
      }`,
    );
  }
  const plugin: Record<string, unknown> = {
    type: "azure-vnet",
    mode: "bridge",
    bridge: "azure0",
  };
  if (options.master !== undefined) {
    if (new TextEncoder().encode(options.master).length > 15) {
      throw new RangeError(
        `Cannot use master "${options.master}": longer than 15 bytes`,
      );
    }
    if (!NAME_RE.test(options.master)) {
      throw new SyntaxError(
        `Cannot use master "${options.master}": not an interface name`,
      );
    }
    plugin.master = options.master;
  }
  const ipam: Record<string, unknown> = { type: "azure-vnet-ipam" };
  if (options.ipamEnv !== undefined) {
    if (options.ipamEnv !== "azure" && options.ipamEnv !== "imds") {
      throw new RangeError(
        `Cannot use IPAM environment "${options.ipamEnv}": use "azure" or "imds"`,
      );
    }
    ipam.environment = options.ipamEnv;
  }
  plugin.ipam = ipam;
  const doc = { cniVersion, name: "azure", plugins: [plugin] };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/**
 * Renders the agent's systemd unit; `deploy/azure-vnet-agent.service` is
 * this text for `/opt/cni/bin/azure-vnet-agent` (a test keeps them equal).
 *
 * The agent runs as root in the host's namespaces: it needs
 * CAP_NET_ADMIN and CAP_SYS_ADMIN (`setns()` into pod namespaces) and
 * must see the pod namespaces' bind mounts under `/run/netns`, so the
 * unit has no `PrivateMounts=`, `ProtectSystem=` or capability bounding.
 * Its state and log dirs are the plugins' defaults, which is where the
 * plugins look for the socket; `CNI_PATH=/opt/cni/bin` is where the
 * launcher finds the delegate IPAM plugins it grants the agent at start;
 * `KillMode=mixed` sends SIGTERM to the agent only, so the children of the
 * requests it drains (ebtables-restore, delegate IPAM plugins) are not cut
 * short, and the stop timeout covers those requests (a state-lock wait is
 * at most 30 s) before SIGKILL reaches every process of the unit.
 *
 * @param options `agentPath`: the installed agent.
 * @returns The unit text (trailing newline).
 * @throws {SyntaxError} When the path is not absolute or has characters
 *   systemd would treat specially (whitespace, quotes, `%`, `$`, `\\`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { renderAgentUnit } from "./installer.ts";
 * const unit = renderAgentUnit({ agentPath: "/opt/cni/bin/azure-vnet-agent" });
 * assert.match(unit, /^ExecStart=\/opt\/cni\/bin\/azure-vnet-agent serve$/m);
 * assert.match(unit, /^Restart=on-failure$/m);
 * ```
 */
export function renderAgentUnit(options: { agentPath: string }): string {
  const path = options.agentPath;
  if (!path.startsWith("/") || /[\s"'%$\\;]/.test(path)) {
    throw new SyntaxError(
      `Cannot write a unit for agent path "${path}": want an absolute path without whitespace, quotes, %, $, ; or \\`,
    );
  }
  return [
    "# azure-vnet node agent (#14): a warm azure-vnet process behind the thin",
    "# plugins. They forward each CNI call to <state dir>/azure-vnet-agent.sock",
    "# when the agent listens there, and run it in process when it does not,",
    "# so stopping this unit never breaks pod networking, only slows it.",
    "# Written by `deno task install --systemd-dir DIR`; see the README.",
    "[Unit]",
    "Description=azure-vnet CNI node agent",
    "After=local-fs.target",
    "Before=containerd.service crio.service kubelet.service",
    "",
    "[Service]",
    "Type=simple",
    "User=root",
    "# The plugins' defaults: the socket is <state dir>/azure-vnet-agent.sock,",
    "# so the agent must use the state dir the plugins see (leave both unset",
    "# in the runtime's environment, as on any node).",
    "Environment=AZURE_VNET_STATE_DIR=/var/run",
    "Environment=AZURE_VNET_LOG_DIR=/var/log",
    "# The launcher grants the agent its delegate IPAM plugins (read, run)",
    "# from the CNI_PATH it starts with: the runtimes' plugin dir.",
    "Environment=CNI_PATH=/opt/cni/bin",
    "# On the node itself: the agent may run delegate IPAM plugins (their state",
    "# is the node's).",
    "Environment=AZURE_VNET_AGENT_IN_CONTAINER=false",
    "# The launcher's Deno cache (DENO_DIR=/var/lib/azure-vnet/deno).",
    "StateDirectory=azure-vnet",
    "UMask=0077",
    `ExecStart=${path} serve`,
    "# SIGTERM to the agent alone: it stops accepting and answers the requests",
    "# in flight, whose ebtables-restore and delegate IPAM children must finish",
    "# (control-group would signal them too). Whatever is left after the 45 s",
    "# (a state-lock wait is at most 30 s) is killed, children included.",
    "KillMode=mixed",
    "KillSignal=SIGTERM",
    "TimeoutStopSec=45",
    "Restart=on-failure",
    "RestartSec=2",
    "LimitNOFILE=65536",
    "",
    "[Install]",
    "WantedBy=multi-user.target",
    "",
  ].join("\n");
}

async function readTextOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/** Writes a file atomically (temp in the same dir, fsync, rename). */
async function writeAtomic(
  path: string,
  data: Uint8Array,
  mode: number,
): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await using f = await Deno.open(tmp, {
      write: true,
      createNew: true,
      mode,
    });
    let off = 0;
    while (off < data.length) off += await f.write(data.subarray(off));
    await f.sync();
    await Deno.chmod(tmp, mode);
    if (Deno.uid() === 0) await Deno.chown(tmp, 0, 0);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

function defaultDist(): string {
  return decodeURIComponent(new URL("../../dist", import.meta.url).pathname);
}

/**
 * Finds a plugin's build output: compiled binary, or launcher + bundle and
 * the bundle's chunks (`<name>.*.js`, loaded by its dynamic imports).
 */
async function artifactOf(
  distDir: string,
  name: string,
): Promise<{ kind: "compiled" | "launcher"; files: string[] }> {
  const bin = `${distDir}/${name}`;
  let head: string;
  try {
    await using f = await Deno.open(bin);
    const buf = new Uint8Array(16);
    const n = await f.read(buf) ?? 0;
    head = new TextDecoder().decode(buf.subarray(0, n));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new Deno.errors.NotFound(
      `Cannot install "${name}": "${bin}" not found; run \`deno task build\` first`,
      { cause: err },
    );
  }
  if (!head.startsWith("#!")) return { kind: "compiled", files: [bin] };
  const js = `${bin}.js`;
  try {
    await Deno.stat(js);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new Deno.errors.NotFound(
      `Cannot install "${name}": launcher without its bundle "${js}"`,
      { cause: err },
    );
  }
  // Written in this order: a plugin started meanwhile never finds a new
  // launcher without its bundle, nor a new bundle without its chunks.
  return {
    kind: "launcher",
    files: [
      ...bundleChunks(distDir, name).map((c) => `${distDir}/${c}`),
      js,
      bin,
    ],
  };
}

/**
 * Runs `CNI_COMMAND=VERSION` against an installed plugin, with an empty
 * environment like a runtime's reduced one, and checks the answer.
 *
 * For a launcher this also warms the V8 code cache of the installed bundle.
 *
 * @param path The installed plugin.
 * @param cniVersion A version the plugin must support.
 * @returns The plugin's `supportedVersions`.
 * @throws {Error} When it exits non-zero or answers something else.
 *
 * @example Usage
 * ```ts ignore
 * import { verifyPlugin } from "./installer.ts";
 * await verifyPlugin("/opt/cni/bin/azure-vnet", "1.0.0");
 * ```
 */
export async function verifyPlugin(
  path: string,
  cniVersion: string,
): Promise<string[]> {
  const out = await new Deno.Command(path, {
    clearEnv: true,
    env: { CNI_COMMAND: "VERSION", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  try {
    await w.write(new TextEncoder().encode(JSON.stringify({ cniVersion })));
    await w.close();
  } catch (err) {
    // One that exits before it reads (its deno or a library missing) is
    // judged by its exit code and output below, not by the broken pipe.
    if (!(err instanceof Deno.errors.BrokenPipe)) throw err;
  }
  const res = await out.output();
  const stdout = new TextDecoder().decode(res.stdout).trim();
  if (!res.success) {
    const stderr = new TextDecoder().decode(res.stderr).trim();
    throw new Error(
      `Cannot verify "${path}": VERSION exited ${res.code}: ${
        stdout || stderr
      }`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch (err) {
    throw new Error(`Cannot verify "${path}": VERSION printed no JSON`, {
      cause: err,
    });
  }
  const versions = (doc as { supportedVersions?: unknown })?.supportedVersions;
  if (
    !Array.isArray(versions) || !versions.every((v) => typeof v === "string")
  ) {
    throw new Error(
      `Cannot verify "${path}": VERSION has no supportedVersions: ${stdout}`,
    );
  }
  if (!versions.includes(cniVersion)) {
    throw new Error(
      `Cannot verify "${path}": cniVersion "${cniVersion}" not supported (${
        versions.join(", ")
      })`,
    );
  }
  return versions;
}

/**
 * Runs `azure-vnet-agent --version` with an empty environment (which also
 * warms a launcher's code cache) and returns the line it printed.
 *
 * @param path The installed agent.
 * @returns Its version line.
 * @throws {Error} When it exits non-zero or prints nothing.
 *
 * @example Usage
 * ```ts ignore
 * import { verifyAgent } from "./installer.ts";
 * await verifyAgent("/opt/cni/bin/azure-vnet-agent");
 * ```
 */
export async function verifyAgent(path: string): Promise<string> {
  const res = await new Deno.Command(path, {
    args: ["--version"],
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(res.stdout).trim();
  if (!res.success || stdout === "") {
    const stderr = new TextDecoder().decode(res.stderr).trim();
    throw new Error(
      `Cannot verify "${path}": --version exited ${res.code}: ${
        stdout || stderr
      }`,
    );
  }
  return stdout;
}

/**
 * Installs the plugins from `dist/` and the conflist, then verifies them.
 *
 * Compiled binaries are copied when present, otherwise the launchers with
 * their `.js` bundles (and the bundles' chunks) next to them, chunks first
 * and launcher last. Binaries are 0755 root, bundles 0644. The previous
 * install's chunks that this one does not write stay until the next
 * install (the manifest's `superseded`), for the processes of the previous
 * version still running. Conf files that sort before the conflist in the
 * conf dir, which a runtime would use instead, are reported (`shadowedBy`).
 * The agent goes to `agentDir` (default: the bin dir) and, with
 * `systemdDir`, its unit (0644) too; the agent is not started. Without
 * `systemdDir` a unit that the earlier install wrote is written again where
 * it was (for this agent path), unless `noSystemd` removes it.
 * Every file is written atomically. An existing conflist that differs from
 * the one to write is replaced when it is the one the earlier install wrote
 * (the manifest records its hash); any other stops the install before
 * anything is written, unless `force`. An identical one is left alone.
 * The conflist is written last, once the plugins and the agent passed
 * verification: a runtime takes it as the node's network being ready. The
 * manifest is written before any file, so `--uninstall` (or the next
 * install) can clean up after a failed verification.
 *
 * @param options Dirs, conflist options and `force`.
 * @returns What was written and each plugin's VERSION answer.
 * @throws {Deno.errors.NotFound} When a build output is missing, or the
 *   node under `hostRoot` lacks what the plugins need from it.
 * @throws {Deno.errors.AlreadyExists} When a different conflist exists that
 *   the earlier install did not write.
 * @throws {RangeError} For invalid conflist options.
 * @throws {TypeError} When both `systemdDir` and `noSystemd` are given.
 * @throws {Error} When a plugin fails verification.
 *
 * @example Usage
 * ```ts ignore
 * import { install } from "./installer.ts";
 * await install({ binDir: "/opt/cni/bin", confDir: "/etc/cni/net.d" });
 * ```
 */
export async function install(
  options: InstallOptions = {},
): Promise<InstallReport> {
  const distDir = options.distDir ?? defaultDist();
  const binDir = options.binDir ?? "/opt/cni/bin";
  const confDir = options.confDir ?? "/etc/cni/net.d";
  const conflistText = renderConflist(options);
  if (options.hostRoot !== undefined) {
    let lacks;
    try {
      lacks = await checkHost(options.hostRoot);
    } catch (err) {
      throw new Error(
        `Cannot check the node's libraries and programs under "${options.hostRoot}"`,
        { cause: err },
      );
    }
    if (lacks.length > 0) {
      throw new Deno.errors.NotFound(
        `Cannot install: ${
          hostLackMessage(lacks)
        } (--skip-host-check, or AZURE_VNET_SKIP_HOST_CHECK=true in the DaemonSet, installs without this check)`,
      );
    }
  }
  const cniVersion = options.cniVersion ?? "1.0.0";
  const agentDir = options.agentDir ?? binDir;
  const artifacts = [];
  for (const name of [...PLUGINS, AGENT]) {
    const dir = name === AGENT ? agentDir : binDir;
    artifacts.push({ name, dir, ...await artifactOf(distDir, name) });
  }
  const agentPath = `${agentDir}/${AGENT}`;
  if (options.systemdDir !== undefined && options.noSystemd === true) {
    throw new TypeError(
      "Cannot install: systemdDir and noSystemd exclude each other",
    );
  }
  const earlier = await readManifest(`${binDir}/${MANIFEST_NAME}`)
    .catch(() => undefined);
  // A unit an earlier install wrote stays (rewritten for this agent path)
  // unless asked otherwise: removing an enabled unit's file behind
  // systemd's back leaves a dangling enablement and no agent after reboot.
  // But only while its file is there: one the operator removed (say, for
  // the DaemonSet's agent) is not brought back as a second agent.
  let earlierUnit: string | undefined;
  for (const f of earlier?.files ?? []) {
    if (baseName(f) !== AGENT_UNIT_NAME || !await exists(f)) continue;
    earlierUnit = f;
    break;
  }
  const systemdDir = options.systemdDir ??
    (options.noSystemd === true || earlierUnit === undefined
      ? undefined
      : dirName(earlierUnit));
  const unitText = systemdDir === undefined
    ? undefined
    : renderAgentUnit({ agentPath });
  const conflistPath = `${confDir}/${CONFLIST_NAME}`;
  const existing = await readTextOrUndefined(conflistPath);
  let conflist: InstallReport["conflist"] = "written";
  if (existing !== undefined) {
    if (existing === conflistText) conflist = "unchanged";
    else if (
      options.force === true ||
      await isOurConflist(existing, conflistPath, earlier)
    ) conflist = "replaced";
    else {
      throw new Deno.errors.AlreadyExists(
        `Cannot write "${conflistPath}": a different conflist exists; use --force to replace it (this installer did not write it: it is then kept as "${conflistPath}${BACKUP_SUFFIX}", and --uninstall puts it back)`,
      );
    }
  }
  const conflistForeign = existing !== undefined &&
    !await isOurConflist(existing, conflistPath, earlier);
  await Deno.mkdir(binDir, { recursive: true });
  await Deno.mkdir(agentDir, { recursive: true });
  await Deno.mkdir(confDir, { recursive: true });
  const manifestPath = `${binDir}/${MANIFEST_NAME}`;
  const written = artifacts.flatMap((a) =>
    a.files.map((src) => ({ src, dst: `${a.dir}/${baseName(src)}` }))
  );
  const unit = systemdDir === undefined
    ? undefined
    : `${systemdDir}/${AGENT_UNIT_NAME}`;
  const files = [...written.map((w) => w.dst), ...unit ? [unit] : []];
  const ours = { path: conflistPath, sha256: await sha256(conflistText) };
  // Files an earlier install wrote that this one does not (another
  // --agent-dir, a unit no longer asked for) go, so the manifest still
  // names all we left; but its chunks stay for one more install, since a
  // process of that version may still import them, and those it kept go.
  const earlierFiles = earlier?.files ?? [];
  const superseded = earlierFiles.filter((f) =>
    !files.includes(f) && isChunk(f)
  );
  const owned = unique([
    ...earlierFiles,
    ...earlier?.superseded ?? [],
    ...earlier?.removing ?? [],
  ]);
  const removing = owned.filter((f) =>
    !files.includes(f) && !superseded.includes(f)
  );
  // Foreign files where this install writes (the Go plugin's, another
  // CNI's conflist under our name) are kept aside, for --uninstall.
  const backups = await planBackups([...files, conflistPath], {
    earlier: earlier?.backups ?? [],
    owned: (p) => p === conflistPath ? !conflistForeign : owned.includes(p),
  });
  // Crash consistency: before any file is replaced, the manifest names
  // every file of the earlier install and of this one, and both conflists,
  // so that whatever a failed or killed install leaves is ours to the next.
  await writeManifest(manifestPath, {
    version: 1,
    files: unique([...files, ...earlierFiles]),
    conflist: ours,
    superseded: earlier?.superseded ?? [],
    removing: earlier?.removing ?? [],
    earlierConflists: [
      ...earlier?.conflist === undefined ? [] : [earlier.conflist],
      ...earlier?.earlierConflists ?? [],
    ].filter((c) => c.path === conflistPath && c.sha256 !== ours.sha256),
    backups: backups.records,
  });
  for (const r of backups.pending) {
    await makeBackup(r);
    log.info("Kept {path} as {backup}", { ...r });
  }
  for (const { src, dst } of written) {
    const mode = src.endsWith(".js") ? 0o644 : 0o755;
    await writeAtomic(dst, await Deno.readFile(src), mode);
    log.info("Installed {dst}", { dst });
  }
  if (
    systemdDir !== undefined && unit !== undefined && unitText !== undefined
  ) {
    await Deno.mkdir(systemdDir, { recursive: true });
    await writeAtomic(unit, new TextEncoder().encode(unitText), 0o644);
    log.info("Installed {unit}", { unit });
  }
  // Verified before the conflist is written: a runtime takes a conflist as
  // the node's network being ready, so a failed install must leave none
  // (or the earlier one, which the manifest written above still names).
  const plugins = [];
  let agent: InstallReport["agent"] | undefined;
  for (const a of artifacts) {
    if (a.name === AGENT) {
      const version = await verifyAgent(agentPath);
      agent = { path: agentPath, kind: a.kind, version };
      continue;
    }
    const versions = await verifyPlugin(`${binDir}/${a.name}`, cniVersion);
    plugins.push({ name: a.name, kind: a.kind, supportedVersions: versions });
  }
  if (agent === undefined) throw new Error("Cannot verify the agent");
  if (conflist !== "unchanged") {
    await writeAtomic(
      conflistPath,
      new TextEncoder().encode(conflistText),
      0o644,
    );
  }
  // This install's manifest, with what it still removes; then the removals,
  // and the manifest without them once they are all done.
  // A removed path that held a foreign file gets it back.
  const manifest: InstallManifest = {
    version: 1,
    files,
    conflist: ours,
    superseded,
    backups: backups.records,
  };
  await writeManifest(manifestPath, { ...manifest, removing });
  const removed: string[] = [];
  const restored: string[] = [];
  for (const f of removing) {
    const how = await takeBack(f, backups.records);
    if (how === "restored") restored.push(f);
    if (how === "removed") removed.push(f);
  }
  if (removing.length > 0) {
    await writeManifest(manifestPath, {
      ...manifest,
      backups: backups.records.filter((b) => !removing.includes(b.path)),
    });
  }
  const shadowedBy = await confFilesBefore(confDir, CONFLIST_NAME);
  for (const f of shadowedBy) {
    log.warn("{f} sorts before {conflist}: the runtime uses it instead", {
      f,
      conflist: conflistPath,
    });
  }
  return {
    files,
    removed,
    backedUp: backups.pending.map((r) => r.path),
    restored,
    superseded,
    conflist,
    shadowedBy,
    plugins,
    agent,
    unit,
    unitKept: unit !== undefined && options.systemdDir === undefined,
  };
}

/**
 * Whether the conflist at `path` is the one the earlier install wrote: the
 * earlier manifest records this path and the text's hash. Such a file is
 * ours to replace (new options, a new version's rendering); anything else
 * is foreign and needs `force`.
 */
async function isOurConflist(
  text: string,
  path: string,
  earlier: InstallManifest | undefined,
): Promise<boolean> {
  const hash = await sha256(text);
  return [
    ...earlier?.conflist === undefined ? [] : [earlier.conflist],
    ...earlier?.earlierConflists ?? [],
  ].some((c) => c.path === path && c.sha256 === hash);
}

/** `items` without repeats, in first-seen order. */
function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}

/** Writes an install manifest atomically. */
async function writeManifest(
  manifestPath: string,
  manifest: InstallManifest,
): Promise<void> {
  await writeAtomic(
    manifestPath,
    new TextEncoder().encode(`${JSON.stringify(manifest, null, 2)}\n`),
    0o644,
  );
}

/** The extensions of the conf files a runtime loads (libcni's ConfFiles). */
const CONF_EXTENSIONS = [".conf", ".conflist", ".json"];

/**
 * The conf files that a runtime would take before `name` in `dir`: libcni
 * lists every entry but directories with a conf extension, sorted by
 * name, and containerd and CRI-O use the first.
 */
async function confFilesBefore(dir: string, name: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isDirectory || e.name >= name) continue;
    if (!CONF_EXTENSIONS.some((x) => e.name.endsWith(x))) continue;
    if (e.isSymlink) {
      const st = await Deno.stat(`${dir}/${e.name}`).catch(() => undefined);
      if (st?.isDirectory === true) continue;
    }
    out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

/** Reads an install manifest; NotFound when there is none. */
async function readManifest(manifestPath: string): Promise<InstallManifest> {
  const text = await readTextOrUndefined(manifestPath);
  if (text === undefined) {
    throw new Deno.errors.NotFound(
      `Cannot uninstall: no manifest "${manifestPath}"`,
    );
  }
  try {
    const manifest = JSON.parse(text) as InstallManifest;
    const optionalLists = [
      manifest.superseded,
      manifest.removing,
      manifest.earlierConflists,
      manifest.backups,
    ];
    if (
      manifest.version !== 1 || !Array.isArray(manifest.files) ||
      !optionalLists.every((l) => l === undefined || Array.isArray(l))
    ) {
      throw new TypeError("unknown format");
    }
    return manifest;
  } catch (err) {
    throw new SyntaxError(`Cannot read manifest "${manifestPath}"`, {
      cause: err,
    });
  }
}

/** What {@link uninstall} did. */
export interface UninstallReport {
  /** Files removed. */
  removed: string[];
  /** Foreign files given back (their backups renamed over ours). */
  restored: string[];
  /**
   * Files kept: a conflist changed since install, and the backup of a
   * foreign one kept with it.
   */
  kept: string[];
}

/**
 * Removes exactly what {@link install} recorded in the bin dir's manifest,
 * and gives back the foreign files it kept aside.
 *
 * A file the install wrote over a foreign one gets that one back (its
 * backup renamed over it); any other is removed. The conflist is removed
 * (or the foreign one it replaced given back) only when its content is
 * still what was installed; otherwise it is kept, with the backup. Files
 * already gone are fine, and an uninstall stopped part way can be run
 * again.
 *
 * @param options `binDir` (where the manifest is).
 * @returns The removed, restored and kept paths.
 * @throws {Deno.errors.NotFound} When there is no manifest.
 * @throws {SyntaxError} When the manifest is corrupt.
 *
 * @example Usage
 * ```ts ignore
 * import { uninstall } from "./installer.ts";
 * await uninstall({ binDir: "/opt/cni/bin" });
 * ```
 */
export async function uninstall(
  options: InstallOptions = {},
): Promise<UninstallReport> {
  const binDir = options.binDir ?? "/opt/cni/bin";
  const manifestPath = `${binDir}/${MANIFEST_NAME}`;
  const manifest = await readManifest(manifestPath);
  const backups = manifest.backups ?? [];
  const removed: string[] = [];
  const restored: string[] = [];
  const kept: string[] = [];
  /** Gives back the foreign file of `path`, else removes ours. */
  async function undo(path: string): Promise<void> {
    const how = await takeBack(path, backups);
    if (how === "restored") restored.push(path);
    if (how === "removed") removed.push(path);
  }
  for (
    const f of unique([
      ...manifest.files,
      ...manifest.superseded ?? [],
      ...manifest.removing ?? [],
    ])
  ) {
    await undo(f);
  }
  const confPath = manifest.conflist.path;
  const conf = await readTextOrUndefined(confPath);
  if (conf === undefined || await isOurConflist(conf, confPath, manifest)) {
    await undo(confPath);
  } else kept.push(confPath);
  // Backups not given back: of a conflist changed since, or of a path this
  // manifest no longer names (a conf dir changed between installs).
  for (const r of backups) {
    if (!restored.includes(r.path) && await fileIdentity(r.backup)) {
      kept.push(r.backup);
    }
  }
  if (await removeIfThere(manifestPath)) removed.push(manifestPath);
  return { removed, restored, kept };
}
