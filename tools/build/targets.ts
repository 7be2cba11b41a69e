/**
 * What `deno task build` produces: one entry per binary, with the
 * permissions that binary needs (docs/STYLE.md section 10).
 *
 * @module
 */

/** Default directory of the state files (`AZURE_VNET_STATE_DIR`). */
export const DEFAULT_STATE_DIR = "/var/run";
/** Default directory of the log files (`AZURE_VNET_LOG_DIR`). */
export const DEFAULT_LOG_DIR = "/var/log";
/** Default writable, pre-warmed `DENO_DIR` used by the launchers. */
export const DEFAULT_DENO_DIR = "/var/lib/azure-vnet/deno";
/** The wireserver, IMDS and loopback: the only network peers. */
export const NET_ALLOW: readonly string[] = [
  "168.63.129.16",
  "169.254.169.254",
  "127.0.0.1",
];

/**
 * The ARM endpoints of Azure's clouds, on 443: the agent's warm pool (#16)
 * updates the NIC there (`cloud.armEndpoint` of its config). Its managed
 * identity token comes from IMDS, already in {@link NET_ALLOW}; the
 * sandbox's ARM emulator listens on 168.63.129.16:443, also granted. An
 * ARM endpoint elsewhere needs its host added here and a rebuild.
 */
export const ARM_HOSTS: readonly string[] = [
  "management.azure.com:443",
  "management.usgovcloudapi.net:443",
  "management.chinacloudapi.cn:443",
];

/**
 * The directories azure-vnet runs `ebtables` and `ebtables-restore` from,
 * in order (`EBTABLES_DIRS` of `cni/plugins/azure-vnet/ebtables.ts`, exported
 * by `@vnet/azure-vnet`; a test keeps the two equal). Never `PATH`.
 */
export const EBTABLES_DIRS: readonly string[] = [
  "/usr/sbin",
  "/sbin",
  "/usr/bin",
  "/bin",
];

/**
 * Every path azure-vnet may run ebtables from: each program in each of
 * {@link EBTABLES_DIRS}, whether it exists or not (Deno accepts a grant of
 * a missing path), so the first one present is always granted.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { EBTABLES_RUN } from "./targets.ts";
 * assert.equal(EBTABLES_RUN[0], "/usr/sbin/ebtables");
 * assert.ok(EBTABLES_RUN.every((p) => p.startsWith("/")));
 * ```
 */
export const EBTABLES_RUN: readonly string[] = EBTABLES_DIRS.flatMap((d) =>
  ["ebtables", "ebtables-restore"].map((name) => `${d}/${name}`)
);

/**
 * The directories runtimes install CNI plugins into (containerd and
 * kubelet: `/opt/cni/bin`; CRI-O: `/usr/libexec/cni`; Debian's
 * containernetworking-plugins: `/usr/lib/cni`; podman's defaults add the
 * `/usr/local` ones). A compiled binary, whose permissions are fixed at
 * build time, may read these to find a delegate IPAM plugin; the launcher
 * grants read on the `CNI_PATH` entries it is started with instead.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { CNI_PLUGIN_DIRS } from "./targets.ts";
 * assert.ok(CNI_PLUGIN_DIRS.includes("/opt/cni/bin"));
 * ```
 */
export const CNI_PLUGIN_DIRS: readonly string[] = [
  "/opt/cni/bin",
  "/usr/libexec/cni",
  "/usr/lib/cni",
  "/usr/local/libexec/cni",
  "/usr/local/lib/cni",
];

/** The permissions one binary is granted. */
export interface TargetPermissions {
  /** `--allow-ffi` (libnl). */
  ffi: boolean;
  /** `--allow-net` scoped to {@link NET_ALLOW}. */
  net: boolean;
  /**
   * Hosts granted besides {@link NET_ALLOW} (with `net`): the agent's ARM
   * endpoints ({@link ARM_HOSTS}); the plugins get none.
   */
  netHosts?: readonly string[];
  /** Extra read paths besides the state and log dirs. */
  read: readonly string[];
  /** Extra write paths besides the state and log dirs. */
  write: readonly string[];
  /**
   * `--allow-sys` names: `networkInterfaces` (the IPAM's host MACs) and
   * `osUptime` (its boot detection).
   */
  sys: readonly string[];
  /**
   * Programs it may run, by absolute path ({@link EBTABLES_RUN}). Never a
   * bare name: Deno resolves a name through the `PATH` it starts with, and
   * the runtime chooses that (containerd puts `/opt/containerd/bin` first).
   */
  run: readonly string[];
  /**
   * May exec delegate plugins found in `CNI_PATH`. The launcher lists the
   * executables of every `CNI_PATH` directory at start (and grants read on
   * those entries); a compiled binary, whose permissions are fixed at
   * build time, gets `--allow-run` unrestricted and read on
   * {@link CNI_PLUGIN_DIRS} instead (a delegate elsewhere is a code-5
   * "no read permission" error of the lookup, naming the path).
   */
  delegates: boolean;
  /**
   * `--allow-net` on `unix:<state dir>/azure-vnet-agent.sock` too: the
   * plugins connect to the agent's socket and the agent listens on it
   * (#14). Deno 2.9.6 checks a unix socket against `--allow-net`
   * (`unix:<path>`) as well as `--allow-read` and `--allow-write` on the
   * path, which the state dir's grants cover.
   */
  agentSocket?: boolean;
  /**
   * Grant `--allow-all` instead of the scoped flags. Deno 2.9.6 refuses
   * `Deno.*` file APIs on `/proc/*` and `/sys/*` ("Requires all access")
   * whatever `--allow-read`/`--allow-write` say, so code that reads
   * `/proc/thread-self/ns/net`, `/proc/sys` or `/sys/class/net` through
   * `Deno.*` only works with this (libc through FFI is not affected).
   */
  all?: boolean;
}

/** One binary of `dist/`. */
export interface BuildTarget {
  /** Output name (`dist/<name>`, `dist/<name>.js`). */
  name: string;
  /** Entry module, relative to the repository root. */
  entry: string;
  /** What it may do. */
  permissions: TargetPermissions;
  /**
   * V8 flags (`--v8-flags=...`), in the launcher and baked into a compiled
   * binary.
   */
  v8Flags?: readonly string[];
}

/** The socket's file name in the state dir (`AGENT_SOCKET_NAME` of @vnet/forward). */
export const AGENT_SOCKET_NAME = "azure-vnet-agent.sock";

/**
 * What azure-vnet may do; the agent, which runs the same handlers, gets the
 * same.
 */
const AZURE_VNET_PERMISSIONS: TargetPermissions = {
  ffi: true,
  net: true,
  read: ["/var/run/netns", "/run/netns"],
  write: ["/var/run/netns", "/run/netns"],
  sys: ["networkInterfaces", "osUptime"],
  run: EBTABLES_RUN,
  delegates: true,
  agentSocket: true,
};

/**
 * The agent's V8 flags; `deno task agent` passes the same.
 *
 * V8 lets the old generation grow to a few times the live heap before a
 * full GC, and grows the young generation to 16 MB semi-spaces under a
 * burst and keeps them. In the agent that growth is garbage: after the
 * benchmark's phases (250 pods present, the 250-burst and its DELs) the
 * heap held 57-64 MB, 18 MB of it live (a forced GC showed it), and the
 * malloc heap 33-43 MB of native buffers the garbage still held.
 * `--max-semi-space-size=1` keeps the young generation small;
 * `--optimize-for-size` makes V8 collect the old generation near its live
 * size. `deno task bench`, agent RSS after the 250-burst (one to three runs,
 * the machine more or less loaded by other work; the least loaded run gave
 * the most): semi-space 1 MB alone 180 MB (and
 * 309 MB in `BENCHMARKS.md`); with `--optimize-for-size` 110, 133 and 144 MB;
 * `--heap-growing-percent=50` with 4 MB semi-spaces 118 and 166 MB, 30 %
 * with 2 MB 153 MB. The rest of the spread is glibc's malloc arenas (13 to
 * 57 MB; `arena_max=2` did not change it). The price: 31-36 % more CPU in
 * the agent over the benchmark's agent phases (`--heap-growing-percent`
 * costs 2-7 %), which the benchmark's latencies did not show (#14).
 */
export const AGENT_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=1",
  "--optimize-for-size",
];

/** The plugins and the agent `deno task build` builds. */
export const TARGETS: readonly BuildTarget[] = [
  {
    name: "azure-vnet",
    entry: "cni/plugins/azure-vnet/main.ts",
    permissions: AZURE_VNET_PERMISSIONS,
  },
  {
    name: "azure-vnet-ipam",
    entry: "ipam/plugins/azure-vnet-ipam/main.ts",
    permissions: {
      ffi: false,
      net: true,
      read: [],
      write: [],
      sys: ["networkInterfaces", "osUptime"],
      run: [],
      delegates: false,
      agentSocket: true,
    },
  },
  {
    name: "azure-vnet-agent",
    entry: "cni/agent/main.ts",
    // Its config file lives in /etc/azure-vnet; its warm pool talks to ARM
    // (#16). The plugins never reach ARM.
    permissions: {
      ...AZURE_VNET_PERMISSIONS,
      read: [...AZURE_VNET_PERMISSIONS.read, "/etc/azure-vnet"],
      netHosts: ARM_HOSTS,
      // The Azure SDK's User-Agent reads os.release().
      sys: [...AZURE_VNET_PERMISSIONS.sys, "osRelease"],
    },
    // Its RSS stays near its live heap (see AGENT_V8_FLAGS).
    v8Flags: AGENT_V8_FLAGS,
  },
];
