/**
 * The node agent (#14) as the sandbox, the benchmark and the tests run it:
 * `azure-vnet-agent serve` started with a node's state and log dirs (in a
 * named netns, or in the caller's), stopped with SIGTERM, and its log read
 * back to tell which requests it served.
 *
 * @module
 */
import { processAlive, stopProcess } from "./process.ts";

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

/**
 * Starts `<agent> serve`, in the node netns when given (through
 * `ip netns exec`, which execs it, as the launcher execs deno: the pid is
 * the agent's), and waits until it says it listens.
 *
 * @param place The agent, its netns and its dirs.
 * @returns The agent's pid.
 * @throws {Error} When it exits or does not listen within 20 s.
 */
export async function startAgent(place: AgentPlace): Promise<number> {
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
  child.unref();
  // It writes one line to stderr once it listens (or why it cannot), and
  // nothing afterwards: read up to that line, then let the pipe go.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const timer = setTimeout(() => reader.cancel().catch(() => {}), 20_000);
  try {
    while (!/listening on/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  if (!/listening on/.test(text)) {
    if (processAlive(child.pid)) Deno.kill(child.pid, "SIGKILL");
    throw new Error(
      `Cannot start the agent in "${place.netns ?? "this netns"}": ${
        text.trim() || "no answer within 20 s"
      }`,
    );
  }
  return child.pid;
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
  const re = /served "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)": code (\d+)/;
  return text.split("\n").flatMap((line) => {
    const m = re.exec(line);
    return m === null ? [] : [m.slice(1, 6).join(" ")];
  });
}

/**
 * Reads what a node's agent served (nothing when it never logged).
 *
 * @param logDir The node's log dir.
 * @returns As {@link servedRequests}.
 */
export async function readServed(logDir: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${logDir}/azure-vnet-agent.log`)
    .catch(() => "");
  return servedRequests(text);
}
