/**
 * The built `dist/azure-vnet-agent` (#14) for a testbed {@link AzureNode}:
 * started in the node's netns for the node's state and log dir, stopped by
 * SIGTERM or killed, and its log read back.
 *
 * @module
 */
import {
  agentSocket as socketIn,
  AZURE_VNET_AGENT_DIST,
  type AzureNode,
} from "../../tools/testbed/mod.ts";

/** The repository's built launcher of the agent (`deno task build`). */
export const AGENT_DIST: string = AZURE_VNET_AGENT_DIST;

/** A running agent. */
export interface RunningAgent extends AsyncDisposable {
  /** The agent process (`ip netns exec` execs it: the same pid). */
  readonly child: Deno.ChildProcess;
  /** Sends SIGTERM and waits: the exit code and stderr. */
  stop(): Promise<{ code: number; stderr: string }>;
  /** kill -9 and waits. */
  kill(): Promise<void>;
}

/** `<dir>/azure-vnet-agent.sock` of a node. */
export function agentSocket(n: AzureNode): string {
  return socketIn(n.dir);
}

async function isSocket(path: string): Promise<boolean> {
  try {
    return (await Deno.lstat(path)).isSocket === true;
  } catch {
    return false;
  }
}

/**
 * Starts the built agent in the node's netns and waits until its socket
 * exists (it reconciles first, so that may take the reconcile's grace).
 *
 * @param n The node.
 * @param options `timeoutMs` to wait for the socket (default 15000).
 * @returns The running agent; disposing kills it.
 */
export async function startAgent(
  n: AzureNode,
  options: { timeoutMs?: number } = {},
): Promise<RunningAgent> {
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", n.node.name, AGENT_DIST, "serve"],
    clearEnv: true,
    env: {
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_PATH: "/usr/lib/cni",
      AZURE_VNET_STATE_DIR: n.dir,
      AZURE_VNET_LOG_DIR: n.dir,
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  let finished = false;
  const result = output.then((o) => {
    finished = true;
    return { code: o.code, stderr: new TextDecoder().decode(o.stderr) };
  });
  const agent: RunningAgent = {
    child,
    async stop() {
      if (!finished) child.kill("SIGTERM");
      return await result;
    },
    async kill() {
      if (!finished) child.kill("SIGKILL");
      await result;
    },
    async [Symbol.asyncDispose]() {
      await agent.kill();
    },
  };
  const deadline = Date.now() + (options.timeoutMs ?? 15000);
  while (Date.now() < deadline && !finished) {
    if (await isSocket(agentSocket(n))) return agent;
    await new Promise((r) => setTimeout(r, 20));
  }
  await agent.kill();
  throw new Error(`The agent did not listen: ${(await result).stderr}`);
}

/**
 * The lines of a log file in the node's dir, empty when there is none.
 *
 * @param n The node.
 * @param file Such as `azure-vnet-agent.log`.
 * @returns Its lines.
 */
export async function logLines(n: AzureNode, file: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${n.dir}/${file}`).catch(() => "");
  return text.split("\n").filter((l) => l !== "");
}

/**
 * The lines of the agent's log that record a served request. The agent logs
 * a request after its reply, so a caller that has just got a reply waits
 * for `atLeast` lines (up to 2 s) before reading.
 *
 * @param n The node.
 * @param options `atLeast`: lines to wait for (default 0: read at once).
 * @returns Those lines.
 */
export async function servedLines(
  n: AzureNode,
  options: { atLeast?: number } = {},
): Promise<string[]> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const lines = (await logLines(n, "azure-vnet-agent.log")).filter((l) =>
      l.includes("served ")
    );
    if (lines.length >= (options.atLeast ?? 0) || Date.now() > deadline) {
      return lines;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
