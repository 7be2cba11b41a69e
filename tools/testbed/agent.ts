/**
 * The node agent (#14) as the sandbox, the benchmark and the tests run it:
 * `azure-vnet-agent serve` started with a node's state and log dirs (in a
 * named netns, or in the caller's), stopped with SIGTERM, and its log read
 * back to tell which requests it served.
 *
 * @module
 */
import { AZURE_VNET_AGENT_DIST } from "./cni.ts";
import type { AzureNode } from "./node.ts";
import { stopProcess } from "./process.ts";

/** Where one node's agent runs. */
export interface AgentPlace {
  /** The agent executable (the built launcher or an installed one). */
  readonly agent: string;
  /** The node netns (through `ip netns exec`); default the caller's. */
  readonly netns?: string;
  /** CNI_PATH of the agent (delegated IPAM plugins). */
  readonly cniPath: string;
  /** AZURE_VNET_STATE_DIR: the socket is `<stateDir>/azure-vnet-agent.sock`. */
  readonly stateDir: string;
  /** AZURE_VNET_LOG_DIR: the agent logs to `azure-vnet-agent.log` there. */
  readonly logDir: string;
  /** AZURE_VNET_AGENT_CONFIG: the agent's config file (#16). */
  readonly configFile?: string;
}

/**
 * The agent's socket in a state dir.
 *
 * @param stateDir The node's state dir.
 * @returns `<stateDir>/azure-vnet-agent.sock`.
 */
export function agentSocket(stateDir: string): string {
  return `${stateDir}/azure-vnet-agent.sock`;
}

/** A running agent, as {@link spawnAgent} and {@link startNodeAgent} give it. */
export interface RunningAgent extends AsyncDisposable {
  /** The agent process (`ip netns exec` execs it: the same pid). */
  readonly child: Deno.ChildProcess;
  /** Sends SIGTERM and waits: the exit code and all it wrote to stderr. */
  stop(): Promise<{ code: number; stderr: string }>;
  /** kill -9 and waits. */
  kill(): Promise<void>;
}

/** Options of {@link spawnAgent}. */
export interface SpawnAgentOptions {
  /** How long to wait for it to listen (default 20000 ms). */
  readonly timeoutMs?: number;
  /**
   * Let the agent outlive this process (the sandbox's `up`): its stderr is
   * read only up to the line that it listens, and the child is unref'd.
   */
  readonly detach?: boolean;
}

/**
 * Starts `<agent> serve`, in the node netns when given (through
 * `ip netns exec`, which execs it, as the launcher execs deno: the pid is
 * the agent's), and waits until it says it listens (one line on stderr,
 * written once its socket exists, after its reconcile).
 *
 * @param place The agent, its netns and its dirs.
 * @param options The wait, and whether it outlives this process.
 * @returns The running agent; disposing kills it.
 * @throws {Error} When it exits or does not listen in time (it is killed).
 */
export async function spawnAgent(
  place: AgentPlace,
  options: SpawnAgentOptions = {},
): Promise<RunningAgent> {
  const argv = place.netns === undefined
    ? [place.agent, "serve"]
    : ["ip", "netns", "exec", place.netns, place.agent, "serve"];
  const [cmd, ...args] = argv;
  const child = new Deno.Command(cmd ?? "", {
    args,
    clearEnv: true,
    env: {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_PATH: place.cniPath,
      AZURE_VNET_STATE_DIR: place.stateDir,
      AZURE_VNET_LOG_DIR: place.logDir,
      ...(place.configFile === undefined
        ? {}
        : { AZURE_VNET_AGENT_CONFIG: place.configFile }),
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const detach = options.detach ?? false;
  if (detach) child.unref();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let listening = false;
  // Read stderr to its end (or, detached, up to the line that it listens,
  // then let the pipe go: it writes nothing afterwards).
  const stderrDone = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
        listening ||= /listening on/.test(text);
        if (listening && detach) break;
      }
    } catch {
      // Cancelled.
    }
    await reader.cancel().catch(() => {});
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const result = async () => {
    const s = await status;
    await stderrDone;
    return { code: s.code, stderr: text };
  };
  const agent: RunningAgent = {
    child,
    async stop() {
      if (!exited) child.kill("SIGTERM");
      return await result();
    },
    async kill() {
      if (!exited) child.kill("SIGKILL");
      await result();
    },
    async [Symbol.asyncDispose]() {
      await agent.kill();
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  while (!listening && !exited && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  if (!listening) {
    await agent.kill();
    throw new Error(
      `Cannot start the agent in "${place.netns ?? "this netns"}": ${
        text.trim() || "no answer in time"
      }`,
    );
  }
  return agent;
}

/**
 * Starts `<agent> serve` as {@link spawnAgent} does, detached: it keeps
 * running after this process exits (stop it with {@link stopAgent}).
 *
 * @param place The agent, its netns and its dirs.
 * @returns The agent's pid.
 * @throws {Error} When it exits or does not listen within 20 s.
 */
export async function startAgent(place: AgentPlace): Promise<number> {
  return (await spawnAgent(place, { detach: true })).child.pid;
}

/**
 * The built agent ({@link AZURE_VNET_AGENT_DIST}) for a testbed node:
 * started in the node's netns with the node's dir as state and log dir and
 * `/usr/lib/cni` as `CNI_PATH`, as the privileged tests run it.
 *
 * @param n The node.
 * @param options The wait for it to listen (default 20000 ms).
 * @returns The running agent; disposing kills it.
 * @throws {Error} When it exits or does not listen in time.
 */
export function startNodeAgent(
  n: AzureNode,
  options: { timeoutMs?: number } = {},
): Promise<RunningAgent> {
  return spawnAgent({
    agent: AZURE_VNET_AGENT_DIST,
    netns: n.node.name,
    cniPath: "/usr/lib/cni",
    stateDir: n.dir,
    logDir: n.dir,
  }, options);
}

/**
 * Stops an agent: SIGTERM (it answers the requests in flight and removes
 * its socket), SIGKILL after 10 s.
 *
 * @param pid The agent's pid.
 * @returns True when it is gone.
 */
export function stopAgent(pid: number): Promise<boolean> {
  return stopProcess(pid, { graceMs: 10_000 });
}

/** One request an agent's log records as served. */
export interface ServedEntry {
  /** The plugin. */
  plugin: string;
  /** `CNI_COMMAND`. */
  command: string;
  /** `CNI_CONTAINERID`. */
  containerId: string;
  /** `CNI_IFNAME`. */
  ifName: string;
  /** The exit code replied. */
  code: number;
  /** The agent's own time, from accepting the call to its reply. */
  ms: number;
}

/**
 * The requests an agent's log records as served (the one parser of its
 * `served` lines).
 *
 * @param text The text of `azure-vnet-agent.log`.
 * @returns The requests, in log order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { servedEntries } from "./agent.ts";
 * const log = 'x INFO served "azure-vnet" "ADD" "c1" "eth0": code 0 in "9.1" ms';
 * assert.equal(servedEntries(log)[0]?.ms, 9.1);
 * ```
 */
export function servedEntries(text: string): ServedEntry[] {
  const re =
    /served "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)": code (\d+) in "?([\d.]+)"? ms/;
  return text.split("\n").flatMap((line) => {
    const m = re.exec(line);
    if (m === null) return [];
    const [, plugin = "", command = "", containerId = "", ifName = ""] = m;
    return [{
      plugin,
      command,
      containerId,
      ifName,
      code: Number(m[5]),
      ms: Number(m[6]),
    }];
  });
}

/**
 * The requests an agent's log records as served, one string per request:
 * `<plugin> <command> <containerId> <ifName> <code>`.
 *
 * @param text The text of `azure-vnet-agent.log`.
 * @returns The requests, in log order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { servedRequests } from "./agent.ts";
 * const log = 'x INFO served "azure-vnet" "ADD" "c1" "eth0": code 0 in 9.1 ms';
 * assert.deepEqual(servedRequests(log), ["azure-vnet ADD c1 eth0 0"]);
 * ```
 */
export function servedRequests(text: string): string[] {
  return servedEntries(text).map(requestText);
}

/** `<plugin> <command> <containerId> <ifName> <code>`. */
function requestText(e: ServedEntry): string {
  return `${e.plugin} ${e.command} ${e.containerId} ${e.ifName} ${e.code}`;
}

/**
 * Reads what a node's agent served (nothing when it never logged).
 *
 * @param logDir The node's log dir.
 * @returns As {@link servedEntries}.
 */
export async function readServedEntries(
  logDir: string,
): Promise<ServedEntry[]> {
  return servedEntries(
    (await logLines(logDir, "azure-vnet-agent.log")).join("\n"),
  );
}

/**
 * Reads what a node's agent served (nothing when it never logged).
 *
 * @param logDir The node's log dir.
 * @returns As {@link servedRequests}.
 */
export async function readServed(logDir: string): Promise<string[]> {
  return (await readServedEntries(logDir)).map(requestText);
}

/**
 * The lines of a log file in a log dir, empty when there is none.
 *
 * @param logDir The log dir (a testbed node's `dir`).
 * @param file Such as `azure-vnet-agent.log`.
 * @returns Its lines.
 */
export async function logLines(
  logDir: string,
  file: string,
): Promise<string[]> {
  const text = await Deno.readTextFile(`${logDir}/${file}`).catch(() => "");
  return text.split("\n").filter((l) => l !== "");
}

/**
 * {@link readServed}, waiting for requests to be logged: the agent logs a
 * request after its reply, so a caller that has just got a reply waits for
 * `atLeast` of them (up to 2 s) before reading.
 *
 * @param logDir The agent's log dir.
 * @param options `atLeast`: requests to wait for (default 0: read at once).
 * @returns As {@link servedRequests}.
 */
export async function servedLines(
  logDir: string,
  options: { atLeast?: number } = {},
): Promise<string[]> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const lines = await readServed(logDir);
    if (lines.length >= (options.atLeast ?? 0) || Date.now() > deadline) {
      return lines;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
