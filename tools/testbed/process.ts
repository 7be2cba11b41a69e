/**
 * Child processes of the testbed: a command with argument arrays (never a
 * shell), optionally inside a named netns through `ip netns exec`, stdin
 * written at once, stdout and stderr collected.
 *
 * @module
 */

/** What one finished process produced. */
export interface ProcessRun {
  /** The exit code (-1 when a signal ended it). */
  code: number;
  /** stdout as text. */
  stdout: string;
  /** stderr as text. */
  stderr: string;
  /** The signal that ended it, if any. */
  signal: Deno.Signal | null;
  /** Wall time from spawn to exit, in ms. */
  ms: number;
}

/** How to start one process. */
export interface SpawnOptions {
  /** The environment: added to the inherited one, or alone with `clearEnv`. */
  env?: Readonly<Record<string, string>>;
  /** Start from an empty environment plus `env` (default false). */
  clearEnv?: boolean;
  /** Text written to stdin, then closed (default: no stdin). */
  stdin?: string;
  /** Run inside this named netns (through `ip netns exec`). */
  netns?: string;
}

/** A started process and the promise of its {@link ProcessRun}. */
export interface Spawned {
  /** The child, to kill it. */
  child: Deno.ChildProcess;
  /** Settles when the child exited and its output is read. */
  done: Promise<ProcessRun>;
}

/**
 * Starts `argv` and collects its output.
 *
 * @param argv The program and its arguments.
 * @param options Environment, stdin and netns.
 * @returns The child and the promise of its result.
 * @throws {TypeError} When `argv` is empty.
 *
 * @example Usage
 * ```ts ignore
 * import { spawnProcess } from "./process.ts";
 * const { done } = spawnProcess(["cat"], { stdin: "hello" });
 * console.log((await done).stdout); // "hello"
 * ```
 */
export function spawnProcess(
  argv: readonly string[],
  options: SpawnOptions = {},
): Spawned {
  const full = options.netns === undefined
    ? [...argv]
    : ["ip", "netns", "exec", options.netns, ...argv];
  const [cmd, ...args] = full;
  if (cmd === undefined) throw new TypeError("Cannot spawn an empty argv");
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args,
    clearEnv: options.clearEnv ?? false,
    ...(options.env === undefined ? {} : { env: { ...options.env } }),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const done = (async () => {
    if (options.stdin !== undefined) {
      const w = child.stdin.getWriter();
      // A child that exits without reading closes the pipe: not our error.
      await w.write(new TextEncoder().encode(options.stdin)).catch(() => {});
      await w.close().catch(() => {});
    }
    const o = await child.output();
    const dec = new TextDecoder();
    return {
      code: o.signal === null ? o.code : -1,
      stdout: dec.decode(o.stdout),
      stderr: dec.decode(o.stderr),
      signal: o.signal,
      ms: performance.now() - t0,
    };
  })();
  return { child, done };
}

/**
 * Runs a command to completion and returns its stdout.
 *
 * @param cmd The program.
 * @param args Its arguments.
 * @returns stdout.
 * @throws {Error} When it exits non-zero (the message carries stderr).
 *
 * @example Usage
 * ```ts ignore
 * import { run } from "./process.ts";
 * const text = await run("ip", ["-j", "link", "show"]);
 * ```
 */
export async function run(
  cmd: string,
  args: readonly string[],
): Promise<string> {
  const r = await spawnProcess([cmd, ...args]).done;
  if (r.code !== 0) {
    throw new Error(
      `Command "${cmd} ${args.join(" ")}" failed: ${r.stderr.trim()}`,
    );
  }
  return r.stdout;
}

/**
 * True while a process with this pid exists.
 *
 * @param pid The pid.
 * @returns Whether `/proc/<pid>` exists.
 */
export function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(
      stat.lastIndexOf(")") + 2,
      stat.lastIndexOf(")") + 3,
    );
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/**
 * Stops a process: SIGTERM, then SIGKILL once `graceMs` has passed, and
 * waits (at most `graceMs` + 3 s) until it is gone.
 *
 * @param pid The pid.
 * @param options `graceMs`: how long SIGTERM may take (default 3000).
 * @returns True when it is gone.
 */
export async function stopProcess(
  pid: number,
  options: { graceMs?: number } = {},
): Promise<boolean> {
  if (!processAlive(pid)) return true;
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return !processAlive(pid);
  }
  const killAt = Math.ceil((options.graceMs ?? 3000) / 100);
  for (let i = 0; i < killAt + 30 && processAlive(pid); i++) {
    if (i === killAt) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return !processAlive(pid);
}
