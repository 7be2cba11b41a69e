/**
 * The thin plugin's forwarder (#14): hand one CNI invocation to
 * `azure-vnet-agent` over its unix socket and print its reply, or run the
 * full plugin in this process when no agent listens.
 *
 * @module
 */
import {
  type AgentPlugin,
  agentSocketPath,
  decodeReply,
  encodeFrame,
  errorDocument,
  MAX_REPLY_BYTES,
  readFrame,
} from "./frame.ts";

/** What the in-process path gets: the environment and stdin if read. */
export interface InProcessIo {
  /** The environment (the one the request would have carried). */
  env: Record<string, string>;
  /**
   * stdin, when the forwarder has read it already (an agent that never got
   * the whole request); otherwise the in-process path reads it.
   */
  stdin?: Uint8Array;
}

/** The full plugin: runs one invocation in this process; the exit code. */
export type InProcessRun = (io: InProcessIo) => Promise<number>;

/** Options of {@link forwardOrRun}; the process's own I/O by default. */
export interface ForwardOptions {
  /** Which plugin this is. */
  plugin: AgentPlugin;
  /**
   * Loads the full plugin (a dynamic `import()`), only when no agent
   * answers the connection.
   */
  load: () => Promise<InProcessRun>;
  /** The environment; default `Deno.env.toObject()`. */
  env?: Record<string, string>;
  /** argv; default `Deno.args`. */
  args?: readonly string[];
  /** stdin; default the process's stdin. */
  stdin?: Pick<Deno.FsFile, "read">;
  /** Receives the stdout text; default writes to `Deno.stdout`. */
  stdout?: (text: string) => void;
  /** Opens the connection; default `Deno.connect` on the unix socket. */
  connect?: (path: string) => Promise<Deno.Conn>;
}

function defaultStdout(text: string): void {
  const data = new TextEncoder().encode(text);
  let off = 0;
  while (off < data.length) off += Deno.stdout.writeSync(data.subarray(off));
}

function defaultConnect(path: string): Promise<Deno.Conn> {
  return Deno.connect({ transport: "unix", path });
}

// The same loop as skel's stdin reader: @vnet/cni cannot be imported here
// (its mod.ts loads logtape and zod, which the fast path must not).
async function readAll(r: Pick<Deno.FsFile, "read">): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await r.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/**
 * Whether an invocation goes to the agent: a CNI call (`CNI_COMMAND` set),
 * not `--version` or `--help`, which the plugin answers itself.
 */
function forwardable(
  env: Readonly<Record<string, string>>,
  args: readonly string[],
): boolean {
  if ((env.CNI_COMMAND ?? "") === "") return false;
  return !args.some((a) => a === "--version" || a === "--help" || a === "-h");
}

/**
 * Whether the agent cannot have received the whole request, so it cannot
 * have run it: writing it failed because the agent's end is gone (EPIPE),
 * or the kernel reset the connection (ECONNRESET). Linux resets a unix
 * stream only when the other end is released with data it never read, or
 * was never accepted (a listener closed with connections in its backlog,
 * as on SIGTERM); an agent that read the request and then died gives EOF.
 */
function neverReceived(err: unknown): boolean {
  return err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionReset;
}

/**
 * Runs one CNI invocation through the agent, or in this process.
 *
 * It connects to {@link agentSocketPath}. When the connection fails (no
 * socket, connection refused, or any other error: nothing has been sent
 * yet), it loads the full plugin with `load()` and runs the invocation
 * here, exactly as without an agent. Once connected, it sends the whole
 * environment and stdin as one frame, waits for the reply, prints its
 * stdout and returns its code; a reply that hands the request back unrun
 * (`inProcess`) runs it here. It never runs a request the agent may have
 * run: when the agent cannot have received the whole request (the write
 * failed, or the kernel reset the connection, as for a connection still in
 * the backlog of an agent stopping), or said it holds the request but never
 * said it runs it ({@link AgentRequest.progress}: an agent killed while the
 * request waited its turn), it runs it here; any other failure after
 * connecting prints a CNI error with code 11 ("try again later") and
 * returns 1.
 *
 * @param options The plugin, its loader and injectable I/O.
 * @returns The exit code.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { forwardOrRun } from "./forward.ts";
 * const code = await forwardOrRun({
 *   plugin: "azure-vnet",
 *   env: { CNI_COMMAND: "VERSION", AZURE_VNET_STATE_DIR: "/nonexistent" },
 *   args: [],
 *   load: () => Promise.resolve(() => Promise.resolve(42)),
 * });
 * assert.equal(code, 42);
 * ```
 */
export async function forwardOrRun(options: ForwardOptions): Promise<number> {
  const env = options.env ?? Deno.env.toObject();
  const args = options.args ?? Deno.args;
  const fallback = async () => await (await options.load())({ env });
  if (!forwardable(env, args)) return await fallback();
  let conn: Deno.Conn;
  try {
    conn = await (options.connect ?? defaultConnect)(agentSocketPath(env));
  } catch {
    return await fallback();
  }
  const stdout = options.stdout ?? defaultStdout;
  let stdin: Uint8Array | undefined;
  let handedBack = false;
  // Progress frames read: 1 once the agent holds the request, 2 once it
  // runs it.
  let progress = 0;
  try {
    stdin = await readAll(options.stdin ?? Deno.stdin);
    await writeAll(
      conn,
      encodeFrame({
        plugin: options.plugin,
        env,
        stdin: stdin.toBase64(),
        progress: true,
      }),
    );
    let body: Uint8Array | undefined;
    while ((body = await readFrame(conn, MAX_REPLY_BYTES))?.length === 0) {
      progress++;
    }
    if (body === undefined) {
      throw new Error("The agent closed the connection without a reply");
    }
    const reply = decodeReply(body);
    handedBack = reply.inProcess === true;
    if (!handedBack) {
      stdout(reply.stdout);
      return reply.code;
    }
  } catch (err) {
    const unrun = progress === 1 || (progress === 0 && neverReceived(err));
    if (stdin !== undefined && unrun) {
      conn.close();
      return await (await options.load())({ env, stdin });
    }
    stdout(errorDocument(11, "The azure-vnet agent did not answer", {
      details: err instanceof Error ? err.message : String(err),
      ...(stdin === undefined ? {} : { stdin }),
    }));
    return 1;
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
  // The agent handed the request back unrun: it runs here.
  return await (await options.load())({ env, stdin });
}
