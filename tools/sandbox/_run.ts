/**
 * Runs the external commands the sandbox drives (`ip`, `ebtables`, `bridge`,
 * plugin binaries) with argument arrays, never a shell.
 *
 * @module
 */

/** What a finished command left behind. */
export interface RunResult {
  /** Exit code. */
  code: number;
  /** Decoded stdout. */
  stdout: string;
  /** Decoded stderr. */
  stderr: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Text written to stdin (default: no stdin). */
  stdin?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Start from an empty environment plus `env` (default false). */
  clearEnv?: boolean;
  /** Throw when the exit code is not 0 (default true). */
  check?: boolean;
}

/**
 * Runs `cmd args...` and returns its exit code and output.
 *
 * @param cmd The program.
 * @param args Its arguments.
 * @param options stdin, environment and whether a failure throws.
 * @returns The exit code, stdout and stderr.
 * @throws {Error} When `check` is on and the command fails.
 */
export async function run(
  cmd: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args: [...args],
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env === undefined ? {} : { env: options.env }),
    clearEnv: options.clearEnv ?? false,
  }).spawn();
  if (options.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(options.stdin));
    await w.close();
  }
  const out = await child.output();
  const res = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (res.code !== 0 && (options.check ?? true)) {
    throw new Error(
      `Command "${cmd} ${
        args.join(" ")
      }" failed with code ${res.code}: ${res.stderr.trim()}`,
    );
  }
  return res;
}

/**
 * Runs `ip -n NETNS args...` (or plain `ip` when `netns` is empty).
 *
 * @param netns The namespace name, or "" for the current one.
 * @param args The `ip` arguments.
 * @returns stdout.
 * @throws {Error} When `ip` fails.
 */
export async function ipIn(
  netns: string,
  args: readonly string[],
): Promise<string> {
  const full = netns === "" ? args : ["-n", netns, ...args];
  return (await run("ip", full)).stdout;
}

/**
 * Runs `ip netns exec NETNS cmd args...`.
 *
 * @param netns The namespace name.
 * @param argv The command and its arguments.
 * @param options As for {@linkcode run}.
 * @returns The result.
 */
export function execIn(
  netns: string,
  argv: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return run("ip", ["netns", "exec", netns, ...argv], options);
}

/**
 * True when `ping -c1 -W1 target` from inside `netns` is answered, trying
 * twice (the first echo may wait on ARP or neighbour discovery).
 *
 * @param netns The namespace to ping from.
 * @param target The IPv4 or IPv6 address.
 * @param options `from`: the source address (`ping -I`).
 * @returns Whether a reply came back.
 */
export async function pingFrom(
  netns: string,
  target: string,
  options: { from?: string } = {},
): Promise<boolean> {
  const from = options.from === undefined ? [] : ["-I", options.from];
  for (let attempt = 0; attempt < 2; attempt++) {
    const res = await execIn(netns, [
      "ping",
      "-c1",
      "-W1",
      "-q",
      ...from,
      target,
    ], {
      check: false,
    });
    if (res.code === 0) return true;
  }
  return false;
}
