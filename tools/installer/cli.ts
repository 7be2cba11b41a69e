/**
 * Command line of `deno task install`.
 *
 * @module
 */
import { parseCli } from "../_cli.ts";
import { BACKUP_SUFFIX } from "./backup.ts";
import {
  AGENT_UNIT_NAME,
  CONFLIST_NAME,
  install,
  type InstallOptions,
  uninstall,
  UNIT_REMOVAL_STEPS,
} from "./installer.ts";

const USAGE = `usage: deno task install [options]

Checks the node for libnl, ebtables and glibc, installs dist/azure-vnet,
dist/azure-vnet-ipam and the node agent dist/azure-vnet-agent (compiled
binaries, or launchers with their .js bundles), runs VERSION against each
installed plugin and --version against the agent, then writes
10-azure.conflist. It never starts the agent.

options:
  --bin-dir DIR        plugin directory (default /opt/cni/bin)
  --conf-dir DIR       conflist directory (default /etc/cni/net.d)
  --agent-dir DIR      where the agent goes (default: the bin dir)
  --systemd-dir DIR    also write azure-vnet-agent.service there (such as
                       /etc/systemd/system); then run systemctl daemon-reload
                       and systemctl enable --now azure-vnet-agent. Without
                       it, a unit an earlier install wrote is kept
                       while its file is there
  --no-systemd         remove the unit an earlier install wrote (prints the
                       systemctl steps to run; it never runs systemctl)
  --dist DIR           build output to install (default <repo>/dist)
  --master IF          host NIC for the bridge (default: plugin auto-detects)
  --cni-version V      conflist cniVersion (default 1.0.0)
  --ipam-env ENV       ipam.environment: azure or imds
  --host-root DIR      the node's root, checked first for what the plugins
                       load and run from the node: libnl-3.so.200,
                       libnl-route-3.so.200, ebtables, ebtables-restore,
                       glibc (default /; the DaemonSet: /proc/1/root)
  --skip-host-check    install without that check (an unusual node)
  --force              replace a different conflist that this installer did
                       not write (its own earlier one is replaced anyway)
  --uninstall          remove exactly what the last install wrote, and put
                       back what it replaced
  -h, --help           this text

A file that this installer did not write (the Go plugin's azure-vnet, another
CNI's 10-azure.conflist) is kept as <file>.pre-azure-vnet before it is
replaced; --uninstall renames it back.`;

const OPTIONS = {
  "bin-dir": { type: "string" },
  "conf-dir": { type: "string" },
  "agent-dir": { type: "string" },
  "systemd-dir": { type: "string" },
  "no-systemd": { type: "boolean" },
  dist: { type: "string" },
  master: { type: "string" },
  "cni-version": { type: "string" },
  "ipam-env": { type: "string" },
  "host-root": { type: "string" },
  "skip-host-check": { type: "boolean" },
  force: { type: "boolean" },
  uninstall: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function write(stream: "out" | "err", text: string): void {
  const s = stream === "out" ? Deno.stdout : Deno.stderr;
  s.writeSync(new TextEncoder().encode(text));
}

function absolute(path: string): string {
  return path.startsWith("/") ? path : `${Deno.cwd()}/${path}`;
}

function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error && !err.message.includes(
      err.cause.message,
    )
    ? `: ${err.cause.message}`
    : "";
  return `${err.message}${cause}`;
}

/** After a unit file was removed: what the operator must run. */
function writeUnitRemovalSteps(removed: readonly string[]): void {
  for (const f of removed) {
    if (!f.endsWith(`/${AGENT_UNIT_NAME}`)) continue;
    write(
      "out",
      `unit ${f} removed; if it was enabled, run: ${
        UNIT_REMOVAL_STEPS.join(" && ")
      }\n`,
    );
  }
}

/**
 * Runs the installer command line.
 *
 * @param args The arguments (without the program name).
 * @returns 0 done, 1 failed (message on stderr), 2 usage error.
 *
 * @example Usage
 * ```ts ignore
 * import { runInstallerCli } from "./cli.ts";
 * Deno.exit(await runInstallerCli(["--bin-dir", "/tmp/bin"]));
 * ```
 */
export async function runInstallerCli(
  args: readonly string[],
): Promise<number> {
  const parsed = parseCli(args, { usage: USAGE, options: OPTIONS });
  if ("exitCode" in parsed) return parsed.exitCode;
  const v = parsed.values;
  if (v.help === true) {
    write("out", `${USAGE}\n`);
    return 0;
  }
  for (
    const [a, b] of [["systemd-dir", "no-systemd"], [
      "host-root",
      "skip-host-check",
    ]] as const
  ) {
    if (v[a] !== undefined && v[b] === true) {
      write("err", `--${a} and --${b} exclude each other\n${USAGE}\n`);
      return 2;
    }
  }
  const options: InstallOptions = {};
  if (v["bin-dir"] !== undefined) options.binDir = absolute(v["bin-dir"]);
  if (v["conf-dir"] !== undefined) options.confDir = absolute(v["conf-dir"]);
  if (v["agent-dir"] !== undefined) options.agentDir = absolute(v["agent-dir"]);
  if (v["systemd-dir"] !== undefined) {
    options.systemdDir = absolute(v["systemd-dir"]);
  }
  if (v.dist !== undefined) options.distDir = absolute(v.dist);
  if (v.master !== undefined) options.master = v.master;
  if (v["cni-version"] !== undefined) options.cniVersion = v["cni-version"];
  if (v["ipam-env"] !== undefined) options.ipamEnv = v["ipam-env"];
  if (v["no-systemd"] === true) options.noSystemd = true;
  if (v.force === true) options.force = true;
  if (v["skip-host-check"] !== true && v.uninstall !== true) {
    options.hostRoot = absolute(v["host-root"] ?? "/");
  }
  try {
    if (v.uninstall === true) {
      const r = await uninstall(options);
      for (const f of r.removed) write("out", `removed ${f}\n`);
      for (const f of r.restored) {
        write("out", `restored ${f} (the file that was there before)\n`);
      }
      for (const f of r.kept) {
        write(
          "out",
          f.endsWith(BACKUP_SUFFIX)
            ? `kept ${f} (the file it replaced; the conflist changed since install)\n`
            : `kept ${f} (changed since install)\n`,
        );
      }
      writeUnitRemovalSteps(r.removed);
      return 0;
    }
    const r = await install(options);
    for (const f of r.backedUp) {
      write(
        "out",
        `kept ${f} as ${f}${BACKUP_SUFFIX} (not written by this installer; --uninstall puts it back)\n`,
      );
    }
    for (const f of r.files) write("out", `installed ${f}\n`);
    for (const f of r.removed) {
      write("out", `removed ${f} (no longer installed)\n`);
    }
    for (const f of r.restored) {
      write("out", `restored ${f} (no longer installed there)\n`);
    }
    writeUnitRemovalSteps(r.removed);
    for (const f of r.superseded) {
      write(
        "out",
        `kept ${f} (previous version's chunk; the next install removes it)\n`,
      );
    }
    for (const p of r.plugins) {
      write(
        "out",
        `verified ${p.name} (${p.kind}): VERSION ${
          p.supportedVersions.join(",")
        }\n`,
      );
    }
    write(
      "out",
      `verified ${r.agent.path} (${r.agent.kind}): ${r.agent.version}\n`,
    );
    // Written after the verification (a failed one leaves no conflist).
    write("out", `conflist ${r.conflist}\n`);
    for (const f of r.shadowedBy) {
      write(
        "err",
        `warning: ${f} sorts before ${CONFLIST_NAME}: the container runtime uses the first conf file of the directory, so it will use ${f} instead (move it away to use azure-vnet)\n`,
      );
    }
    if (r.unit !== undefined && r.unitKept) {
      write(
        "out",
        `unit ${r.unit} kept from the earlier install (--no-systemd removes it); apply it with: systemctl daemon-reload && systemctl restart azure-vnet-agent\n`,
      );
    } else if (r.unit !== undefined) {
      write(
        "out",
        `unit ${r.unit} written; start it with: systemctl daemon-reload && systemctl enable --now azure-vnet-agent\n`,
      );
    }
    return 0;
  } catch (err) {
    write("err", `Install failed: ${messageOf(err)}\n`);
    return 1;
  }
}
