/**
 * The sandbox lifecycle: `up` builds the fabric and nodes, starts the
 * emulator, provisions ipconfigs through `tools/nic`, installs the plugins,
 * starts `azure-vnet-agent` in each node (unless `agent: false`) and
 * creates pods through the real `azure-vnet`; `status`, `exec` and `down`
 * act on exactly what the record says `up` created.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { execIn, ipIn, pingFrom, run } from "./_run.ts";
import {
  agentSocket,
  readServed,
  startAgent,
  stopAgent,
} from "../testbed/mod.ts";
import {
  processAlive,
  readArmNics,
  seedEmulatorState,
  startEmulator,
  stopEmulator,
} from "./_emulator.ts";
import {
  applyFabricRules,
  createFabric,
  createNode,
  IMDS_IP,
  listSandboxNetns,
  SandboxNames,
  subnetLayout,
  WIRESERVER_IP,
} from "./fabric.ts";
import { AZURE_GATEWAY_IPV6, type FabricView } from "./fabric_rules.ts";
import {
  type NodeCniEnv,
  pluginConfig,
  podAddress,
  runCni,
} from "./cni_runner.ts";
import {
  loadRecord,
  type NodeRecord,
  type PodRecord,
  type SandboxMode,
  type SandboxRecord,
  saveRecord,
} from "./record.ts";
import {
  type CheckResult,
  planChecks,
  renderTable,
  runChecks,
  type ServedBy,
} from "./report.ts";

const log = getLogger(["vnet", "sandbox"]);

/** The repository root (for the build, installer and NIC tool). */
export const REPO_ROOT = new URL("../../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

/** Where sandboxes live by default, one directory per prefix. */
export const SANDBOX_ROOT = "/var/run/azure-vnet-sandbox";

/** The default subnet of the emulated VNET. */
export const DEFAULT_SUBNET = "10.240.0.0/16";

/** The IPv6 subnet of a dual-stack sandbox (Azure gives IPv6 subnets a /64). */
export const DEFAULT_IPV6_SUBNET = "fd00:10:240::/64";

/**
 * The record file of a sandbox directory.
 *
 * @param dir The sandbox directory.
 * @returns `<dir>/sandbox.json`.
 */
export function recordPath(dir: string): string {
  return `${dir}/sandbox.json`;
}

/** Options of {@linkcode sandboxUp}. */
export interface UpOptions {
  /** Prefix of every netns (default `vsb`). */
  prefix?: string;
  /** Sandbox directory (default `/var/run/azure-vnet-sandbox/<prefix>`). */
  dir?: string;
  /** Node count (default 2). */
  nodes?: number;
  /** Pods per node (default 2). */
  pods?: number;
  /** IP configurations per NIC, primary included (default 8). */
  ipCount?: number;
  /**
   * The plugin's mode (default `bridge`): `transparent` routes through the
   * node, whose `eth0` keeps its addresses (#15).
   */
  mode?: SandboxMode;
  /**
   * Dual-stack (transparent mode only; bridge mode is IPv4 only): the
   * subnet gets an IPv6 /64, every NIC as many IPv6 ipconfigs as IPv4 ones,
   * every pod an address of each family, and the checks run in both.
   */
  dualStack?: boolean;
  /** Skip `deno task build` (reuse `dist/`). */
  skipBuild?: boolean;
  /**
   * Run `azure-vnet-agent` in each node (default true); false exercises
   * the plugins' in-process fallback.
   */
  agent?: boolean;
  /**
   * The agents run a warm pool (#16) keeping `min`..`max` free addresses:
   * they grow the NICs from `ipCount` through the ARM emulator.
   */
  warm?: { min: number; max: number } | undefined;
  /** Inject 429 (with Retry-After) and 500 replies into ARM while pods come up. */
  armFaults?: boolean;
  /** Receives progress and table lines (default: the logger). */
  print?: (line: string) => void;
}

/** What `up` returns. */
export interface UpResult {
  /** The record. */
  record: SandboxRecord;
  /** The check results. */
  results: CheckResult[];
  /** The rendered table including the summary line. */
  lines: string[];
}

/**
 * The default sandbox directory for a prefix.
 *
 * @param prefix The sandbox prefix.
 * @returns `/var/run/azure-vnet-sandbox/<prefix>`.
 */
export function defaultDir(prefix: string): string {
  return `${SANDBOX_ROOT}/${prefix}`;
}

function nodeEnv(rec: SandboxRecord, node: NodeRecord): NodeCniEnv {
  return {
    netns: node.netns,
    binDir: rec.binDir,
    stateDir: node.stateDir,
    logDir: node.logDir,
  };
}

/**
 * Regenerates the fabric rules from the emulator's current ARM state.
 *
 * @param rec The sandbox record.
 * @returns The view applied.
 * @throws {Error} When the emulator is not running or a command fails.
 */
export async function syncFabric(rec: SandboxRecord): Promise<FabricView> {
  if (rec.emulator === undefined) {
    throw new Error("Cannot sync the fabric: the emulator is not running");
  }
  const nics = await readArmNics(rec.emulator.stateFile);
  const view: FabricView = {
    subnet: rec.subnet,
    ports: rec.nodes.map((n) => {
      const nic = nics.find((c) => c.name === n.nicName);
      return {
        port: n.port,
        mac: n.mac,
        ips: nic?.ips ?? [n.primaryIp],
        ...(rec.ipv6Subnet === undefined ? {} : {
          ipv6s: nic?.ipv6s ??
            (n.primaryIpv6 === undefined ? [] : [n.primaryIpv6]),
        }),
      };
    }),
  };
  await applyFabricRules(new SandboxNames(rec.prefix), view);
  return view;
}

/**
 * Makes a node's NIC carry `count` ipconfigs (primary included) through
 * `tools/nic`, run inside the node netns so IMDS sees the node, then
 * regenerates the fabric. In a dual-stack sandbox it carries as many IPv6
 * ipconfigs (the node's own included). The tool reads the node's IPAM state, so a
 * scale-down never removes an address in use.
 *
 * @param rec The sandbox record.
 * @param options The node index and the total ipconfig count.
 * @throws {Error} When the tool fails.
 */
export async function provisionNode(
  rec: SandboxRecord,
  options: { node: number; count: number },
): Promise<void> {
  const node = rec.nodes[options.node];
  if (node === undefined || rec.emulator === undefined) {
    throw new RangeError(`Cannot provision node ${options.node}: no such node`);
  }
  await execIn(node.netns, [
    Deno.execPath(),
    "run",
    "-A",
    `${REPO_ROOT}/tools/nic/main.ts`,
    "provision",
    "--count",
    String(options.count),
    "--imds-url",
    `http://${IMDS_IP}`,
    "--arm-endpoint",
    rec.emulator.armEndpoint,
    "--ca-file",
    rec.emulator.caFile,
    "--state-dir",
    node.stateDir,
    ...(rec.ipv6Subnet === undefined
      ? []
      : ["--ipv6-count", String(options.count)]),
  ]);
  await syncFabric(rec);
}

/** The `code` of a CNI error document, or undefined. */
function cniCode(stdout: string): number | undefined {
  try {
    const code = (JSON.parse(stdout) as { code?: unknown }).code;
    return typeof code === "number" ? code : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Writes a node's agent config for the warm pool (#16) into its state dir
 * (which the built agent may read), with the emulator's CA beside it: ARM
 * is the emulator on 168.63.129.16:443, IMDS (and the managed identity's
 * token) 169.254.169.254, both inside the fabric. Short intervals so a
 * burst of pods is served within seconds.
 *
 * @param rec The sandbox record (with `warm` and a running emulator).
 * @param node The node.
 * @returns The config file's path.
 */
async function writeAgentConfig(
  rec: SandboxRecord,
  node: NodeRecord,
): Promise<string> {
  if (rec.warm === undefined || rec.emulator === undefined) {
    throw new Error("Cannot configure a warm pool without the emulator");
  }
  const ca = `${node.stateDir}/arm-ca.pem`;
  await Deno.copyFile(rec.emulator.caFile, ca);
  const file = `${node.stateDir}/agent.json`;
  const config = {
    warmPool: {
      warmMin: rec.warm.min,
      warmMax: rec.warm.max,
      intervalSeconds: 2,
      minUpdateIntervalSeconds: 0.5,
      maxBackoffSeconds: 4,
      scaleUpWaitSeconds: 20,
    },
    cloud: {
      armEndpoint: rec.emulator.armEndpoint,
      imdsUrl: `http://${IMDS_IP}`,
      caFile: ca,
    },
  };
  await Deno.writeTextFile(file, JSON.stringify(config, null, 2) + "\n");
  return file;
}

/**
 * The metrics of each node's agent, fetched inside the node's netns from
 * its listener (`127.0.0.1:10091`, #16).
 *
 * @param dir The sandbox directory.
 * @returns Per running agent, its node and the exposition text (or why it
 *   could not be read).
 * @throws {Deno.errors.NotFound} When there is no sandbox there.
 */
export async function sandboxMetrics(
  dir: string,
): Promise<{ node: string; text: string }[]> {
  const rec = await loadRecord(recordPath(dir));
  const out: { node: string; text: string }[] = [];
  for (const a of rec.agents ?? []) {
    const n = rec.nodes[a.node];
    if (n === undefined) continue;
    out.push({ node: n.netns, text: await agentMetrics(n) });
  }
  return out;
}

/** GET /metrics of a node's agent, inside its netns. */
async function agentMetrics(node: NodeRecord): Promise<string> {
  const r = await execIn(node.netns, [
    Deno.execPath(),
    "eval",
    "const r = await fetch('http://127.0.0.1:10091/metrics');" +
    "await Deno.stdout.write(new TextEncoder().encode(await r.text()));",
  ], { check: false });
  return r.code === 0 ? r.stdout : `# cannot read: ${r.stderr.trim()}`;
}

/** The value of one sample line of an exposition, 0 when absent. */
function sample(text: string, line: RegExp): number {
  let sum = 0;
  for (const l of text.split("\n")) {
    if (line.test(l)) sum += Number(l.slice(l.lastIndexOf(" ") + 1)) || 0;
  }
  return sum;
}

/**
 * Sets (or clears) an emulator fault on ARM, through its admin endpoint
 * inside the fabric netns.
 */
async function setArmFault(
  rec: SandboxRecord,
  fault: Record<string, number> | undefined,
): Promise<void> {
  const fabric = new SandboxNames(rec.prefix).fabric;
  const body = JSON.stringify({ endpoint: "arm", ...fault });
  await execIn(fabric, [
    Deno.execPath(),
    "eval",
    fault === undefined
      ? `await (await fetch('http://${WIRESERVER_IP}/_emulator/faults', { method: 'DELETE' })).body?.cancel();`
      : `const r = await fetch('http://${WIRESERVER_IP}/_emulator/faults', { method: 'POST', body: ${
        JSON.stringify(body)
      } }); if (!r.ok) throw new Error(String(r.status)); await r.body?.cancel();`,
  ]);
}

/**
 * Starts the installed agent in a node's netns with the node's state and
 * log dirs, and records its pid.
 *
 * @param rec The sandbox record (the agent is recorded and saved).
 * @param node The node index.
 * @returns The agent's pid.
 * @throws {Error} When it does not start listening.
 */
export async function startNodeAgent(
  rec: SandboxRecord,
  node: number,
): Promise<number> {
  const n = rec.nodes[node];
  if (n === undefined) throw new RangeError(`Cannot find node ${node}`);
  const pid = await startAgent({
    agent: `${rec.binDir}/azure-vnet-agent`,
    netns: n.netns,
    cniPath: rec.binDir,
    stateDir: n.stateDir,
    logDir: n.logDir,
    ...(rec.warm === undefined ? {} : {
      configFile: await writeAgentConfig(rec, n),
    }),
  });
  rec.agents = [...(rec.agents ?? []).filter((a) => a.node !== node), {
    node,
    pid,
  }];
  await saveRecord(recordPath(rec.dir), rec);
  return pid;
}

/**
 * Stops a node's agent (SIGTERM: it finishes what is in flight and removes
 * its socket) and forgets it.
 *
 * @param rec The sandbox record (saved).
 * @param node The node index.
 * @returns The pid stopped and whether it and its socket are gone, or
 *   undefined when the node runs no agent.
 */
export async function stopNodeAgent(
  rec: SandboxRecord,
  node: number,
): Promise<{ pid: number; gone: boolean } | undefined> {
  const agent = rec.agents?.find((a) => a.node === node);
  const n = rec.nodes[node];
  if (agent === undefined || n === undefined) return undefined;
  let gone = await stopAgent(agent.pid);
  const socket = await Deno.lstat(agentSocket(n.stateDir)).then(
    () => true,
    () => false,
  );
  gone &&= !socket;
  if (gone) {
    rec.agents = (rec.agents ?? []).filter((a) => a.node !== node);
    await saveRecord(recordPath(rec.dir), rec);
  }
  return { pid: agent.pid, gone };
}

/**
 * Who ran a pod's ADD, from its node agent's log: the agent when the log
 * records a served ADD of the pod's container with code 0.
 *
 * @param rec The sandbox record.
 * @param pod The pod.
 * @returns `agent` or `in-process`.
 */
export async function podServedBy(
  rec: SandboxRecord,
  pod: PodRecord,
): Promise<ServedBy> {
  const node = rec.nodes[pod.node];
  if (node === undefined) return "in-process";
  const served = await readServed(node.logDir);
  const want = `azure-vnet ADD ${pod.containerId} ${pod.ifName} 0`;
  return served.includes(want) ? "agent" : "in-process";
}

/**
 * Creates a pod netns and runs the CNI ADD for it on its node.
 *
 * With `netns`, the pod joins that existing netns instead (a runtime's
 * sandbox reused for a new container id); the netns is then not the pod's
 * to delete.
 *
 * @param rec The sandbox record (the pod is appended and saved).
 * @param options The node index, the pod name, an existing netns, the
 *   config (default: the installed conflist's).
 * @returns The pod.
 * @throws {Error} When the ADD fails (a netns it created is removed again).
 */
export async function addPod(
  rec: SandboxRecord,
  options: {
    node: number;
    name: string;
    netns?: string;
    config?: Record<string, unknown>;
    /** Repeat an ADD that answers 11 (try again later) for up to this long. */
    retryTryAgainMs?: number;
  },
): Promise<PodRecord> {
  const node = rec.nodes[options.node];
  if (node === undefined) {
    throw new RangeError(
      `Cannot add pod to node ${options.node}: no such node`,
    );
  }
  const ns = options.netns ?? options.name;
  const owned = options.netns === undefined;
  if (owned) {
    await ipIn("", ["netns", "add", ns]);
    rec.netns.push(ns);
    await saveRecord(recordPath(rec.dir), rec);
    await ipIn(ns, ["link", "set", "lo", "up"]);
  }
  const containerId = crypto.randomUUID().replaceAll("-", "");
  const config = options.config ?? await podConfig(rec);
  const deadline = Date.now() + (options.retryTryAgainMs ?? 0);
  let out = await runCni(nodeEnv(rec, node), {
    command: "ADD",
    containerId,
    netnsPath: `/var/run/netns/${ns}`,
    ifName: "eth0",
    config,
  });
  while (
    out.code !== 0 && cniCode(out.stdout) === 11 && Date.now() < deadline
  ) {
    await new Promise((r) => setTimeout(r, 500));
    out = await runCni(nodeEnv(rec, node), {
      command: "ADD",
      containerId,
      netnsPath: `/var/run/netns/${ns}`,
      ifName: "eth0",
      config,
    });
  }
  if (out.code !== 0 || out.result === undefined) {
    if (owned) {
      await ipIn("", ["netns", "del", ns]).catch(() => "");
      rec.netns = rec.netns.filter((n) => n !== ns);
      await saveRecord(recordPath(rec.dir), rec);
    }
    throw new Error(
      `Cannot add pod "${options.name}": azure-vnet exited ${out.code}: ${out.stdout.trim()} ${out.stderr.trim()}`,
    );
  }
  const addr = podAddress(out.result);
  const pod: PodRecord = {
    name: options.name,
    ...(owned ? {} : { netns: ns }),
    node: options.node,
    containerId,
    ifName: "eth0",
    ...addr,
  };
  rec.pods.push(pod);
  await saveRecord(recordPath(rec.dir), rec);
  return pod;
}

/**
 * Runs the CNI DEL for a pod and deletes its netns (when it created it).
 *
 * @param rec The sandbox record (the pod is removed and saved).
 * @param name The pod name.
 * @throws {Error} When the DEL fails.
 */
export async function deletePod(
  rec: SandboxRecord,
  name: string,
): Promise<void> {
  const pod = rec.pods.find((p) => p.name === name);
  const node = rec.nodes[pod?.node ?? -1];
  if (pod === undefined || node === undefined) {
    throw new RangeError(`Cannot delete pod "${name}": no such pod`);
  }
  const ns = pod.netns ?? name;
  const out = await runCni(nodeEnv(rec, node), {
    command: "DEL",
    containerId: pod.containerId,
    netnsPath: `/var/run/netns/${ns}`,
    ifName: pod.ifName,
    config: await podConfig(rec),
  });
  if (out.code !== 0) {
    throw new Error(
      `Cannot delete pod "${name}": azure-vnet exited ${out.code}: ${out.stdout.trim()}`,
    );
  }
  if (pod.netns === undefined) {
    await ipIn("", ["netns", "del", name]).catch(() => "");
    rec.netns = rec.netns.filter((n) => n !== name);
  }
  rec.pods = rec.pods.filter((p) => p.name !== name);
  await saveRecord(recordPath(rec.dir), rec);
}

/**
 * The plugin config a runtime would send: the installed conflist's
 * azure-vnet entry, with the wireserver at its documented address.
 *
 * @param rec The sandbox record.
 * @returns The stdin config.
 */
export async function podConfig(
  rec: SandboxRecord,
): Promise<Record<string, unknown>> {
  const conflist = JSON.parse(
    await Deno.readTextFile(await conflistFile(rec.confDir)),
  ) as Record<string, unknown>;
  return pluginConfig(conflist);
}

/** The conflist a runtime reads: the first `*.conflist` by name. */
async function conflistFile(confDir: string): Promise<string> {
  const entries: string[] = [];
  for await (const e of Deno.readDir(confDir)) {
    if (e.name.endsWith(".conflist")) entries.push(e.name);
  }
  entries.sort();
  const first = entries[0];
  if (first === undefined) {
    throw new Error(`Cannot find a conflist in "${confDir}"`);
  }
  return `${confDir}/${first}`;
}

/**
 * Sets the installed conflist's azure-vnet `mode` (the installer writes
 * bridge mode). A transparent network has no bridge, so `bridge` goes.
 *
 * @param confDir The conflist directory.
 * @param mode The mode.
 */
async function setConflistMode(
  confDir: string,
  mode: SandboxMode,
): Promise<void> {
  const file = await conflistFile(confDir);
  const conflist = JSON.parse(await Deno.readTextFile(file)) as {
    plugins?: Record<string, unknown>[];
  };
  for (const p of conflist.plugins ?? []) {
    if (p.type !== "azure-vnet") continue;
    p.mode = mode;
    if (mode === "transparent") delete p.bridge;
  }
  await Deno.writeTextFile(file, JSON.stringify(conflist, null, 2) + "\n");
}

/**
 * Runs the connectivity checks of every pod and renders the table. In a
 * sandbox that `up` made (with or without agents), each pod's ADD must also
 * have run where the sandbox says: by its node's agent (the agent's log
 * records it), or in the plugin process (no record).
 *
 * @param rec The sandbox record.
 * @returns The results and the lines (summary last).
 */
export async function checkSandbox(
  rec: SandboxRecord,
): Promise<{ results: CheckResult[]; lines: string[] }> {
  const servedBy: ServedBy | undefined = rec.agent === undefined
    ? undefined
    : rec.agent
    ? "agent"
    : "in-process";
  const layout = subnetLayout(rec.subnet, { ipv6: rec.ipv6Subnet });
  const checks = planChecks(rec.pods, {
    nodes: rec.nodes,
    gateway: layout.gateway,
    ...(layout.ipv6 === undefined ? {} : { gateway6: layout.ipv6.gateway }),
    ...(servedBy === undefined ? {} : { servedBy }),
    ...(rec.warm === undefined ? {} : { armNic: true }),
  });
  const results = await runChecks(checks, {
    ping: pingFrom,
    servedBy: (pod) => podServedBy(rec, pod),
    onNic: async (pod, nicName) => {
      if (rec.emulator === undefined) return false;
      const nics = await readArmNics(rec.emulator.stateFile);
      return nics.find((c) => c.name === nicName)?.ips.includes(pod.ip) ??
        false;
    },
    parallel: 4,
  });
  return { results, lines: renderTable(rec.pods, results) };
}

/**
 * Builds the sandbox (see the module doc), prints the table and returns it.
 * On failure, what was created stays recorded for `down`.
 *
 * @param options Sizes, prefix, directory.
 * @returns The record, check results and table lines.
 * @throws {Error} When a step fails.
 */
export async function sandboxUp(options: UpOptions = {}): Promise<UpResult> {
  const print = options.print ?? ((l: string) => log.info(l));
  const names = new SandboxNames(options.prefix ?? "vsb");
  const dir = options.dir ?? defaultDir(names.prefix);
  const nodeCount = options.nodes ?? 2;
  const podCount = options.pods ?? 2;
  const ipCount = options.ipCount ?? 8;
  const agent = options.agent ?? true;
  const mode = options.mode ?? "bridge";
  if (options.dualStack === true && mode !== "transparent") {
    throw new RangeError(
      `Cannot bring up a dual-stack sandbox in ${mode} mode: bridge mode is IPv4 only; use transparent mode`,
    );
  }
  const subnet = subnetLayout(DEFAULT_SUBNET, {
    ipv6: options.dualStack === true ? DEFAULT_IPV6_SUBNET : undefined,
  });
  try {
    await Deno.stat(recordPath(dir));
    throw new Deno.errors.AlreadyExists(
      `Cannot bring up sandbox "${names.prefix}": "${
        recordPath(dir)
      }" exists; run down first`,
    );
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  await Deno.mkdir(dir, { recursive: true });
  const rec: SandboxRecord = {
    version: 1,
    prefix: names.prefix,
    dir,
    subnet: subnet.cidr,
    ...(subnet.ipv6 === undefined ? {} : { ipv6Subnet: subnet.ipv6.cidr }),
    mode,
    netns: [],
    emulator: undefined,
    binDir: `${dir}/bin`,
    confDir: `${dir}/net.d`,
    nodes: [],
    pods: [],
    agent,
    agents: [],
    ...(options.warm === undefined ? {} : { warm: options.warm }),
  };
  const save = () => saveRecord(recordPath(dir), rec);
  await save();

  print(
    `fabric: ${names.fabric} (gateway ${subnet.gateway}${
      subnet.ipv6 === undefined
        ? ""
        : `, IPv6 router ${AZURE_GATEWAY_IPV6} and ${subnet.ipv6.gateway}`
    }, ${WIRESERVER_IP}, ${IMDS_IP})`,
  );
  rec.netns.push(names.fabric);
  await save();
  await createFabric(names, subnet);

  const stateFile = `${dir}/emulator.json`;
  const vms = await seedEmulatorState(stateFile, {
    subnet: subnet.cidr,
    ipv6Subnet: subnet.ipv6?.cidr,
    vmNames: Array.from({ length: nodeCount }, (_, i) => names.node(i)),
  });
  for (const [i, vm] of vms.entries()) {
    const node: NodeRecord = {
      index: i,
      netns: names.node(i),
      port: names.port(i),
      nicName: vm.nicName,
      mac: vm.mac,
      primaryIp: vm.primaryIp,
      ...(vm.primaryIpv6 === undefined ? {} : { primaryIpv6: vm.primaryIpv6 }),
      stateDir: `${dir}/node${i}/run`,
      logDir: `${dir}/node${i}/log`,
    };
    await Deno.mkdir(node.stateDir, { recursive: true });
    await Deno.mkdir(node.logDir, { recursive: true });
    rec.netns.push(node.netns);
    rec.nodes.push(node);
    await save();
    await createNode(names, i, { nic: vm, subnet });
    print(
      `node: ${node.netns} eth0 ${vm.mac} ${vm.primaryIp}/${subnet.prefixLength}${
        vm.primaryIpv6 === undefined ? "" : ` ${vm.primaryIpv6}/64`
      }`,
    );
  }
  const emu = await startEmulator(names.fabric, { stateFile, dir });
  rec.emulator = emu;
  await save();
  print(`emulator: pid ${emu.pid} in ${names.fabric}`);
  await syncFabric(rec);

  for (const node of rec.nodes) {
    await provisionNode(rec, { node: node.index, count: ipCount });
    print(
      `provisioned: ${node.nicName} has ${ipCount} ${
        subnet.ipv6 === undefined ? "" : `IPv4 and ${ipCount} IPv6 `
      }ipconfigs`,
    );
  }

  if (options.skipBuild !== true) {
    await run(Deno.execPath(), ["task", "--cwd", REPO_ROOT, "build"]);
  }
  await run(Deno.execPath(), [
    "run",
    "-A",
    `${REPO_ROOT}/tools/installer/main.ts`,
    "--bin-dir",
    rec.binDir,
    "--conf-dir",
    rec.confDir,
  ]);
  if (mode !== "bridge") await setConflistMode(rec.confDir, mode);
  print(
    `plugins: installed in ${rec.binDir}, conflist ${
      mode === "bridge" ? "" : `(mode ${mode}) `
    }in ${rec.confDir}`,
  );
  for (const node of rec.nodes) {
    if (!agent) break;
    const pid = await startNodeAgent(rec, node.index);
    print(
      `agent: pid ${pid} in ${node.netns} on ${agentSocket(node.stateDir)}`,
    );
  }
  if (!agent) print("agent: none (--no-agent): the plugins run in process");
  if (options.warm !== undefined && agent) {
    print(
      `warm pool: ${options.warm.min}..${options.warm.max} free addresses per node, the agents grow the NICs through ARM`,
    );
  }
  const faults = options.armFaults === true && options.warm !== undefined;
  if (faults) {
    await setArmFault(rec, {
      errorCount: 2,
      errorStatus: 429,
      retryAfterSeconds: 1,
    });
    print("arm faults: the next 2 ARM requests get 429 with Retry-After: 1");
  }

  for (const node of rec.nodes) {
    for (let j = 0; j < podCount; j++) {
      if (faults && node.index === 0 && j === Math.floor(podCount / 2)) {
        await setArmFault(rec, { errorCount: 2, errorStatus: 500 });
        print("arm faults: the next 2 ARM requests get 500");
      }
      await addPod(rec, {
        node: node.index,
        name: names.pod(node.index, j),
        // A runtime retries an ADD that answered 11 (try again later).
        ...(options.warm === undefined ? {} : { retryTryAgainMs: 60_000 }),
      });
    }
  }
  if (options.warm !== undefined) {
    // The fabric learns the ipconfigs the agents added.
    await syncFabric(rec);
    const nics = await readArmNics(emu.stateFile);
    for (const node of rec.nodes) {
      const nic = nics.find((c) => c.name === node.nicName);
      const text = agent ? await agentMetrics(node) : "";
      const arm = (result: string) =>
        sample(
          text,
          new RegExp(
            `^azure_vnet_arm_requests_total\\{.*result="${result}".*\\} `,
          ),
        );
      print(
        `warm pool: ${node.nicName} grew from ${ipCount} to ${
          nic?.ips.length ?? 0
        } ipconfigs; ARM requests ok ${arm("ok")}, throttled ${
          arm("throttled")
        }, server_error ${arm("server_error")}`,
      );
    }
  }
  const { results, lines } = await checkSandbox(rec);
  for (const l of lines) print(l);
  return { record: rec, results, lines };
}

/**
 * Describes a running sandbox: the emulator, nodes with their ipconfigs and
 * pods.
 *
 * @param dir The sandbox directory.
 * @returns The lines.
 * @throws {Deno.errors.NotFound} When there is no sandbox there.
 */
export async function sandboxStatus(dir: string): Promise<string[]> {
  const rec = await loadRecord(recordPath(dir));
  const live = new Set(await listSandboxNetns(rec.prefix));
  const lines = [
    `sandbox ${rec.prefix} in ${rec.dir} (subnet ${rec.subnet}${
      rec.ipv6Subnet === undefined ? "" : ` and ${rec.ipv6Subnet}`
    }, mode ${rec.mode ?? "bridge"})`,
    `emulator: ${
      rec.emulator === undefined
        ? "not started"
        : `pid ${rec.emulator.pid} ${
          processAlive(rec.emulator.pid) ? "running" : "GONE"
        }`
    }`,
  ];
  for (const a of rec.agents ?? []) {
    lines.push(
      `agent: node${a.node} pid ${a.pid} ${
        processAlive(a.pid) ? "running" : "GONE"
      }`,
    );
  }
  const nics = rec.emulator === undefined
    ? []
    : await readArmNics(rec.emulator.stateFile).catch(() => []);
  for (const n of rec.nodes) {
    const nic = nics.find((c) => c.name === n.nicName);
    const v6 = n.primaryIpv6 === undefined
      ? ""
      : ` ${n.primaryIpv6} ipv6 ipconfigs=${nic?.ipv6s.length ?? 0}`;
    lines.push(
      `node${n.index}: ${n.netns} ${
        live.has(n.netns) ? "up" : "MISSING"
      } ${n.mac} ${n.primaryIp} ipconfigs=${nic?.ips.length ?? 0}${v6}`,
    );
  }
  for (const p of rec.pods) {
    lines.push(
      `pod: ${p.name} node${p.node} ${p.ip}${
        p.ipv6 === undefined ? "" : ` ${p.ipv6}`
      } ${p.mac} ${live.has(p.netns ?? p.name) ? "up" : "MISSING"}`,
    );
  }
  return lines;
}

/**
 * Runs a command inside a pod (or node, or the fabric) netns of the sandbox.
 *
 * @param dir The sandbox directory.
 * @param argv The target name (pod name, `nodeN` or `fabric`), then the
 *   command.
 * @returns The exit code (output is inherited).
 * @throws {RangeError} When the target is not part of the sandbox.
 */
export async function sandboxExec(
  dir: string,
  argv: string[],
): Promise<number> {
  const rec = await loadRecord(recordPath(dir));
  const [target, ...cmd] = argv;
  const names = new SandboxNames(rec.prefix);
  const pod = rec.pods.find((p) => p.name === target);
  const ns = (pod === undefined ? undefined : pod.netns ?? pod.name) ??
    (target === "fabric" ? names.fabric : undefined) ??
    rec.nodes.find((n) => `node${n.index}` === target || n.netns === target)
      ?.netns;
  if (ns === undefined || cmd.length === 0) {
    throw new RangeError(
      `Cannot exec in "${
        target ?? ""
      }": want a pod name, nodeN or fabric, then a command`,
    );
  }
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", ns, ...cmd],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  return (await child.status).code;
}

/**
 * Removes everything `up` recorded: DEL for each pod (best effort), the
 * emulator process, every netns (with their links and rules), the sandbox
 * directory; then checks that each is gone.
 *
 * @param dir The sandbox directory.
 * @returns The lines describing what was removed; the last one says
 *   whether everything is gone.
 * @throws {Error} When something is left behind.
 */
export async function sandboxDown(dir: string): Promise<string[]> {
  const rec = await loadRecord(recordPath(dir));
  const lines: string[] = [];
  for (const p of [...rec.pods]) {
    await deletePod(rec, p.name).then(
      () => lines.push(`pod: ${p.name} deleted (CNI DEL)`),
      (e: unknown) => lines.push(`pod: ${p.name} DEL failed: ${String(e)}`),
    );
  }
  const agents = [...(rec.agents ?? [])];
  for (const a of agents) {
    const served = (await readServed(rec.nodes[a.node]?.logDir ?? "")).length;
    const stopped = await stopNodeAgent(rec, a.node);
    lines.push(
      `agent: node${a.node} pid ${a.pid} ${
        stopped?.gone === true ? "stopped" : "STILL RUNNING"
      } after serving ${served} requests`,
    );
  }
  if (rec.emulator !== undefined) {
    const gone = await stopEmulator(rec.emulator.pid);
    lines.push(
      `emulator: pid ${rec.emulator.pid} ${gone ? "stopped" : "STILL RUNNING"}`,
    );
  }
  for (const ns of [...rec.netns].reverse()) {
    await ipIn("", ["netns", "del", ns]).catch(() => "");
    lines.push(`netns: ${ns} deleted`);
  }
  await Deno.remove(rec.dir, { recursive: true }).catch(() => {});
  if (rec.dir === defaultDir(rec.prefix)) {
    // The shared parent goes too once no other sandbox lives there.
    await Deno.remove(SANDBOX_ROOT).catch(() => {});
  }
  const left: string[] = [];
  const liveNetns = new Set(await listSandboxNetns(rec.prefix));
  for (const ns of rec.netns) if (liveNetns.has(ns)) left.push(`netns ${ns}`);
  if (rec.emulator !== undefined && processAlive(rec.emulator.pid)) {
    left.push(`emulator pid ${rec.emulator.pid}`);
  }
  for (const a of agents) {
    if (processAlive(a.pid)) left.push(`agent pid ${a.pid}`);
  }
  try {
    await Deno.stat(rec.dir);
    left.push(`directory ${rec.dir}`);
  } catch {
    // gone, as wanted
  }
  if (left.length > 0) {
    throw new Error(
      `Cannot take sandbox "${rec.prefix}" down: left ${left.join(", ")}`,
    );
  }
  lines.push(`down: sandbox ${rec.prefix} removed, nothing left behind`);
  return lines;
}

/**
 * Removes a node's egress MAC SNAT rule (the plugin's
 * `POSTROUTING ... -j snat`), for the negative proof.
 *
 * @param rec The sandbox record.
 * @param node The node index.
 * @returns The removed rule text.
 * @throws {Error} When the node has no such rule.
 */
export async function removeSnatRule(
  rec: SandboxRecord,
  node: number,
): Promise<string> {
  const n = rec.nodes[node];
  if (n === undefined) throw new RangeError(`Cannot find node ${node}`);
  const list = await execIn(n.netns, [
    "ebtables",
    "-t",
    "nat",
    "-L",
    "POSTROUTING",
    "--Ln",
  ]);
  // `--Ln` prints "1. -s ..." on ebtables-legacy and "1 -s ..." on -nft.
  const line = list.stdout.split("\n").find((l) => /-j snat/.test(l));
  const num = line === undefined
    ? undefined
    : /^(\d+)\.?\s/.exec(line.trim())?.[1];
  if (line === undefined || num === undefined) {
    throw new Error(`Cannot find the SNAT rule on node${node}: ${list.stdout}`);
  }
  await execIn(n.netns, ["ebtables", "-t", "nat", "-D", "POSTROUTING", num]);
  return line.trim();
}

/**
 * The forwarding switches transparent mode needs on a node: IPv4, and IPv6
 * too in a dual-stack sandbox.
 *
 * @param rec The sandbox record.
 * @returns The sysctl keys.
 */
function forwardingKeys(rec: SandboxRecord): string[] {
  return rec.ipv6Subnet === undefined
    ? ["net.ipv4.ip_forward"]
    : ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"];
}

/**
 * Turns a node's forwarding switches ({@linkcode forwardingKeys}) off or
 * on, for transparent mode's negative proof.
 *
 * @param rec The sandbox record.
 * @param options The node index and the wanted setting.
 * @returns The settings written, as `key=value`.
 * @throws {Error} When `sysctl` fails.
 */
async function setNodeForwarding(
  rec: SandboxRecord,
  options: { node: number; on: boolean },
): Promise<string[]> {
  const n = rec.nodes[options.node];
  if (n === undefined) {
    throw new RangeError(`Cannot find node ${options.node}`);
  }
  const set = forwardingKeys(rec).map((k) => `${k}=${options.on ? 1 : 0}`);
  for (const kv of set) await execIn(n.netns, ["sysctl", "-q", "-w", kv]);
  return set;
}

/** What {@linkcode sandboxNegative} found. */
export interface NegativeResult {
  /** True when every cross-node check touching the node failed. */
  readonly proven: boolean;
  /** What was done and the table, the verdict last but one or last. */
  readonly lines: string[];
}

/**
 * The negative proof: breaks one thing the plugin set up on a node and
 * shows that every cross-node check touching that node fails. Bridge mode
 * removes the node's egress MAC SNAT rule (and leaves it removed);
 * transparent mode turns the node's forwarding off (IPv6 too when
 * dual-stack), then turns it on again and checks again.
 *
 * @param dir The sandbox directory.
 * @param options The node index.
 * @returns Whether it is proven, and the lines.
 * @throws {Deno.errors.NotFound} When there is no sandbox there.
 */
export async function sandboxNegative(
  dir: string,
  options: { node: number },
): Promise<NegativeResult> {
  const rec = await loadRecord(recordPath(dir));
  const node = options.node;
  const transparent = rec.mode === "transparent";
  const lines: string[] = [];
  const what = transparent
    ? `with forwarding off (${forwardingKeys(rec).join(", ")})`
    : "without its SNAT rule";
  if (transparent) {
    const off = await setNodeForwarding(rec, { node, on: false });
    lines.push(`set on node${node}: ${off.join(" ")}`);
  } else {
    lines.push(`removed on node${node}: ${await removeSnatRule(rec, node)}`);
  }
  const { results, lines: table } = await checkSandbox(rec);
  lines.push(...table);
  const cross = results.filter((r) =>
    (r.kind === "cross-node" || r.kind === "cross-node6") &&
    (r.pod.node === node ||
      rec.pods.find((p) => p.name === r.targetName)?.node === node)
  );
  const proven = cross.length > 0 && cross.every((r) => !r.ok);
  lines.push(
    proven
      ? `NEGATIVE PROOF: all ${cross.length} cross-node checks touching node${node} fail ${what}`
      : "NEGATIVE PROOF FAILED: cross-node traffic still passes",
  );
  if (transparent) {
    const on = await setNodeForwarding(rec, { node, on: true });
    const again = await checkSandbox(rec);
    lines.push(
      `restored on node${node}: ${on.join(" ")}; ${again.lines.at(-1) ?? ""}`,
    );
  }
  return { proven, lines };
}

/**
 * "Reboots" a node: its pods' netns vanish behind the plugin's back and the
 * node netns is replaced by a fresh one, like the VM after a reboot and
 * DHCP (`eth0` with the NIC's MAC, primary address and default route; no
 * bridge, no ebtables rules). The plugin state directory survives, so state
 * and kernel now disagree. The pods stay in the record: the runtime still
 * believes in them until it DELs them or GC drops them.
 *
 * @param rec The sandbox record.
 * @param node The node index.
 * @returns The names of the pods that died.
 * @throws {RangeError} When there is no such node.
 */
export async function rebootNode(
  rec: SandboxRecord,
  node: number,
): Promise<string[]> {
  const n = rec.nodes[node];
  if (n === undefined) throw new RangeError(`Cannot reboot node ${node}`);
  const names = new SandboxNames(rec.prefix);
  const dead = rec.pods.filter((p) => p.node === node);
  // The VM's processes die with it: the agent would otherwise keep the old
  // node netns alive and serve the new node's calls there.
  const agent = await stopNodeAgent(rec, node);
  if (agent !== undefined && !agent.gone) {
    throw new Error(`Cannot reboot node ${node}: agent ${agent.pid} remains`);
  }
  for (const p of dead) {
    await ipIn("", ["netns", "del", p.netns ?? p.name]).catch(() => "");
  }
  // Deleting the veth first makes its fabric end go at once; a deleted
  // netns releases its links only later, in the kernel's cleanup work.
  await ipIn(names.fabric, ["link", "del", n.port]);
  await ipIn("", ["netns", "del", n.netns]);
  await createNode(names, node, {
    nic: { mac: n.mac, primaryIp: n.primaryIp, primaryIpv6: n.primaryIpv6 },
    subnet: subnetLayout(rec.subnet, { ipv6: rec.ipv6Subnet }),
  });
  await syncFabric(rec);
  if (agent !== undefined) await startNodeAgent(rec, node);
  return dead.map((p) => p.name);
}

/**
 * Runs the CNI GC on a node (cniVersion 1.1.0) with the record's pods of
 * that node as `cni.dev/valid-attachments`, as a runtime does.
 *
 * @param rec The sandbox record.
 * @param options The node index and the pods to leave out of the valid
 *   attachments (forgotten by the runtime).
 * @throws {Error} When GC fails.
 */
export async function gcNode(
  rec: SandboxRecord,
  options: { node: number; forget?: readonly string[] },
): Promise<void> {
  const n = rec.nodes[options.node];
  if (n === undefined) throw new RangeError(`Cannot GC node ${options.node}`);
  const forget = new Set(options.forget ?? []);
  const valid = rec.pods
    .filter((p) => p.node === options.node && !forget.has(p.name))
    .map((p) => ({ containerID: p.containerId, ifname: p.ifName }));
  const out = await runCni(nodeEnv(rec, n), {
    command: "GC",
    config: {
      ...await podConfig(rec),
      cniVersion: "1.1.0",
      "cni.dev/valid-attachments": valid,
    },
  });
  if (out.code !== 0) {
    throw new Error(
      `Cannot GC node${options.node}: azure-vnet exited ${out.code}: ${out.stdout.trim()}`,
    );
  }
  rec.pods = rec.pods.filter((p) =>
    p.node !== options.node || !forget.has(p.name)
  );
  rec.netns = rec.netns.filter((x) => !forget.has(x));
  await saveRecord(recordPath(rec.dir), rec);
}
