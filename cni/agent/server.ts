/**
 * The agent's socket server (#14): one CNI invocation per connection,
 * answered by the same `runPlugin()` and handlers as the in-process path,
 * so the reply is byte for byte what the plugin would print.
 *
 * Who may connect: root only, by the file system. The socket is mode 0600
 * and lives in the state directory (`/var/run`, root's), and connecting to
 * a unix socket needs write access to its file. The peer's own uid
 * (`SO_PEERCRED`) is not checked: Deno 2.9 gives an accepted `UnixConn` no
 * file descriptor (its internal fd slot is undefined, only a resource id),
 * so `getsockopt()` through FFI has nothing to ask about. A plugin run as
 * another user is refused at `connect()` (EACCES) and falls back to the
 * in-process path, which fails without root with its own CNI error.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type PluginHandlers, type PluginInfo, runPlugin } from "@vnet/cni";
import {
  type AgentPlugin,
  type AgentReply,
  type AgentRequest,
  decodeRequest,
  encodeFrame,
  errorDocument,
  FrameError,
  MAX_REQUEST_BYTES,
  PROGRESS,
  readFrame,
} from "@vnet/forward";
import { READINESS_VAR } from "./probe.ts";

const log = getLogger(["azure-vnet-agent"]);

/** What a request's handlers may ask of the server while they run. */
export interface RequestContext {
  /**
   * Waits for `wait` without holding the request's slot, so that other
   * requests run meanwhile (an ADD waiting for the warm pool's growth must
   * not hold up the DELs that free addresses), then takes a slot again.
   *
   * @param wait What to wait for.
   * @returns Its value.
   */
  idle<T>(wait: Promise<T>): Promise<T>;
}

/** A plugin the agent runs: its handlers (made once) and its name. */
export interface ServedPlugin {
  /**
   * The handlers, bound once to one context for the process; or, given a
   * request's context, the handlers for that request (a cheap wrapper of
   * handlers made once).
   */
  handlers: PluginHandlers | ((request: RequestContext) => PluginHandlers);
  /** Name and version, as the plugin reports them. */
  info: PluginInfo;
}

/** Why the agent hands a request back unrun ({@link AgentServerOptions.handBack}). */
export interface HandBack {
  /** Why, for the log and the old forwarder's error details. */
  readonly reason: string;
  /**
   * True when the agent must not run the request itself (it would do the
   * wrong thing, not merely fail): a forwarder that predates hand-backs
   * (it asks for no progress frames), which cannot run the request itself,
   * then gets code 11 (try again later) instead of being served. Otherwise
   * that forwarder is served as before.
   */
  readonly required?: boolean;
}

/** One answered request, as {@link AgentServerOptions.onServed} gets it. */
export interface ServedRequest {
  /** The plugin, or `-` for a request that did not parse. */
  readonly plugin: string;
  /** `CNI_COMMAND`, or `-`. */
  readonly command: string;
  /** `CNI_CONTAINERID`, or empty. */
  readonly containerId: string;
  /** `CNI_IFNAME`, or empty. */
  readonly ifName: string;
  /** The exit code replied. */
  readonly code: number;
  /** From the connection's accept to the reply sent, in seconds. */
  readonly seconds: number;
}

/** Options of {@link AgentServer.listen}. */
export interface AgentServerOptions {
  /** The socket path (`<state dir>/azure-vnet-agent.sock`). */
  socketPath: string;
  /** The state directory every request runs against. */
  stateDir: string;
  /** The plugins served. */
  plugins: Readonly<Record<AgentPlugin, ServedPlugin>>;
  /** The largest request body; default 1 MiB. */
  maxRequestBytes?: number;
  /**
   * The most requests run at once (default {@link DEFAULT_MAX_CONCURRENT}).
   * Later ones wait their turn, in the order they were read; VERSION (the
   * probes' call) never waits. Requests of one attachment (plugin,
   * container ID, ifname) run one after another, and one whose caller hung
   * up while it waited is dropped unrun.
   */
  maxConcurrent?: number;
  /**
   * Called after each reply is sent, once the request's slot is free (the
   * entry point flushes its logs and counts the request, #16).
   */
  onServed?: (served: ServedRequest) => Promise<void> | void;
  /**
   * Runs once no other agent listens (a stale socket is gone) and before
   * this one listens: the entry point reconciles the state with the kernel
   * here, while no forwarded request can be in flight.
   */
  beforeListen?: () => Promise<void> | void;
  /**
   * Why a request must run in the plugin's own process instead (a delegate
   * this process may not exec), or undefined to serve it; a string is a
   * {@link HandBack} that is not required. Asked before the request waits
   * for anything, for every command but VERSION. A forwarder that asks for
   * progress frames (one that knows `inProcess`) gets the request back
   * unrun; an older one is served as before, unless the hand-back is
   * required: then it gets code 11.
   */
  handBack?: (
    request: AgentRequest,
    stdin: Uint8Array,
  ) =>
    | Promise<HandBack | string | undefined>
    | HandBack
    | string
    | undefined;
  /**
   * Why the agent is not ready, or undefined when it is (`readiness.ts`).
   * A readiness probe's `VERSION` (marked with `READINESS_VAR` of
   * `probe.ts`) gets code 11 with the reason while it is not; every other
   * `VERSION`, liveness's too, is answered as ever.
   */
  readiness?: () => string | undefined;
  /**
   * How long a connection may take to send its whole request; default
   * {@link REQUEST_READ_TIMEOUT_MS}.
   */
  readTimeoutMs?: number;
  /**
   * How long a call waits for the earlier calls of its attachment; default
   * {@link ATTACHMENT_WAIT_MS}. Past it, it gets code 11 and the runtime
   * retries.
   */
  attachmentWaitMs?: number;
}

/**
 * How long a call waits behind an earlier call of the same attachment (one
 * stuck in the kernel, say) before it gets code 11 instead.
 */
export const ATTACHMENT_WAIT_MS = 60_000;

/**
 * How long a connection may take to send its request. The forwarder sends
 * it at once; a peer stopped mid-frame is dropped.
 */
export const REQUEST_READ_TIMEOUT_MS = 10_000;

/**
 * The default bound of requests run at once. The work of one request
 * serialises on the state locks, the CPU and ebtables' own lock, so more
 * in flight only adds waiting: 250 at once held a few hundred MB of
 * garbage and native buffers, and as many lock waiters, for no faster
 * burst. A few more than the cores keep the kernel and ebtables waits of
 * some requests overlapping with the work of others.
 */
export const DEFAULT_MAX_CONCURRENT = 8;

/**
 * Removes a socket left by a dead agent. A path that is not a socket, or a
 * socket something still listens on, is left alone.
 *
 * @throws {Error} When the path is not a socket or another agent listens.
 */
async function removeStaleSocket(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (info.isSocket !== true) {
    throw new Error(`Cannot listen on "${path}": it exists and is no socket`);
  }
  let live: Deno.Conn | undefined;
  try {
    live = await Deno.connect({ transport: "unix", path });
  } catch (err) {
    if (!(err instanceof Deno.errors.ConnectionRefused)) throw err;
  }
  if (live !== undefined) {
    live.close();
    throw new Error(`Cannot listen on "${path}": another agent listens on it`);
  }
  log.info("Removing the stale socket {path}", { path });
  await Deno.remove(path);
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** Reads and drops what the peer still sends, for at most `ms`. */
async function drain(conn: Deno.Conn, ms: number): Promise<void> {
  const timer = setTimeout(() => conn.close(), ms);
  const buf = new Uint8Array(64 * 1024);
  try {
    while (await conn.read(buf) !== null) { /* dropped */ }
  } catch {
    // Closed by the timer, or reset by the peer.
  } finally {
    clearTimeout(timer);
  }
}

/** The error reply for a frame that breaks the protocol. */
function frameErrorReply(err: FrameError): AgentReply {
  return {
    code: 1,
    stdout: err.oversize
      ? errorDocument(5, "Request too large for the azure-vnet agent", {
        details: err.message,
      })
      : errorDocument(6, "Malformed request to the azure-vnet agent", {
        details: err.message,
      }),
  };
}

/**
 * Sends a progress frame when the forwarder asked for them ("held", then
 * "running"): a forwarder whose connection ends between the two knows the
 * request never ran, and runs it itself.
 *
 * @returns False when the peer is gone.
 */
async function sendProgress(
  conn: Deno.Conn,
  request: AgentRequest,
): Promise<boolean> {
  if (request.progress !== true) return true;
  try {
    await writeAll(conn, PROGRESS);
    return true;
  } catch {
    return false;
  }
}

/** The commands that act on one attachment: serialised per attachment. */
const ATTACHMENT_COMMANDS: ReadonlySet<string> = new Set([
  "ADD",
  "DEL",
  "CHECK",
]);

/**
 * The reply that hands a request back unrun. Its code and stdout are what a
 * forwarder that predates `inProcess` prints: try again later.
 */
function handBackReply(why: string): AgentReply {
  return {
    code: 1,
    stdout: errorDocument(
      11,
      "The azure-vnet agent hands this call back to the plugin, which is older than the agent",
      { details: why },
    ),
    inProcess: true,
  };
}

/**
 * Watches a connection whose request was read for its peer hanging up (the
 * forwarder sends nothing more, and closes only when it is killed).
 *
 * @returns Whether the peer has closed its end by now.
 */
function watchHangUp(conn: Deno.Conn): () => boolean {
  let gone = false;
  conn.read(new Uint8Array(1)).then(
    (n) => {
      if (n === null) gone = true;
    },
    // Our own close after the reply, or a reset: either way nobody listens.
    () => gone = true,
  );
  return () => gone;
}

/**
 * The agent's listener: accepts connections on a unix socket (mode 0600)
 * and serves them concurrently until {@link AgentServer.close}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AgentServer } from "./server.ts";
 * const dir = await Deno.makeTempDir();
 * const noop = () => Promise.resolve();
 * const plugin = {
 *   handlers: { cmdAdd: () => Promise.reject(new Error("no")), cmdDel: noop },
 *   info: { name: "demo", version: "0.1.0" },
 * };
 * const server = await AgentServer.listen({
 *   socketPath: `${dir}/a.sock`,
 *   stateDir: dir,
 *   plugins: { "azure-vnet": plugin, "azure-vnet-ipam": plugin },
 * });
 * assert.equal(((await Deno.stat(`${dir}/a.sock`)).mode ?? 0) & 0o777, 0o600);
 * await server.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class AgentServer implements AsyncDisposable {
  #options: AgentServerOptions;
  #listener: Deno.UnixListener;
  #inode: number | null;
  #inFlight = new Set<Promise<void>>();
  #running = 0;
  /**
   * Requests waiting for a slot, in order: `grant` hands one over; `drop`
   * (set for a request that has not started) lets it go unrun on close.
   */
  #queued: { grant: () => void; drop?: () => void }[] = [];
  /** Resolved when close() begins: waits that have not started end. */
  #stopping = Promise.withResolvers<void>();
  #stopped = false;
  /** The last request waiting or running per attachment (#attachment). */
  #attachments = new Map<string, Promise<void>>();
  #served = 0;
  #accepting: Promise<void>;
  #closing: Promise<void> | undefined;

  /**
   * Use {@link AgentServer.listen}.
   *
   * @param options The options.
   * @param listener The bound listener.
   * @param inode The socket file's inode, to remove only our own.
   */
  constructor(
    options: AgentServerOptions,
    listener: Deno.UnixListener,
    inode: number | null,
  ) {
    this.#options = options;
    this.#listener = listener;
    this.#inode = inode;
    this.#accepting = this.#acceptLoop();
  }

  /**
   * Removes a stale socket, runs `beforeListen`, listens on `socketPath`
   * and makes it mode 0600 (root only: connecting needs write access to the
   * socket file).
   *
   * @param options The socket, state dir and plugins.
   * @returns The running server.
   * @throws {Error} When the path is not a socket, or another agent listens.
   *
   * @tags allow-read, allow-write, allow-net
   */
  static async listen(options: AgentServerOptions): Promise<AgentServer> {
    const path = options.socketPath;
    await removeStaleSocket(path);
    await options.beforeListen?.();
    const listener = Deno.listen({ transport: "unix", path });
    try {
      await Deno.chmod(path, 0o600);
      const info = await Deno.lstat(path);
      log.info("Listening on {path}", { path });
      return new AgentServer(options, listener, info.ino);
    } catch (err) {
      listener.close();
      throw err;
    }
  }

  /** The number of requests answered so far. */
  get served(): number {
    return this.#served;
  }

  /** The number of connections being served now. */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (err) {
        if (this.#closing !== undefined) return;
        log.error("accept failed: {err}", { err: String(err) });
        continue;
      }
      const p: Promise<void> = this.#serve(conn).finally(() => {
        this.#inFlight.delete(p);
      });
      this.#inFlight.add(p);
    }
  }

  /**
   * Waits for a free slot of `maxConcurrent`; FIFO. A request that has not
   * started gets none once close() begins.
   *
   * @returns `granted` with the slot taken, or `dropped`.
   */
  async #slot(
    options: { started: boolean },
  ): Promise<"granted" | "dropped"> {
    if (!options.started && this.#stopped) return "dropped";
    const max = this.#options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT;
    if (this.#running < max) {
      this.#running++;
      return "granted";
    }
    // The slot is handed over by #release, so the count stays the same.
    return await new Promise((resolve) =>
      this.#queued.push({
        grant: () => resolve("granted"),
        ...(options.started ? {} : { drop: () => resolve("dropped") }),
      })
    );
  }

  #release(): void {
    const next = this.#queued.shift();
    if (next !== undefined) next.grant();
    else this.#running--;
  }

  /**
   * Waits until no other request of the same attachment (plugin, container
   * ID, ifname) runs: a runtime's DEL then never overtakes the ADD it
   * cleans up after, even when the runtime gave up on that ADD. FIFO.
   *
   * @returns The release; `late` past the wait; `stopped` when close()
   *   began first.
   */
  async #attachment(
    key: string,
  ): Promise<(() => void) | "late" | "stopped"> {
    const before = this.#attachments.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => release = resolve);
    const tail = (before ?? Promise.resolve()).then(() => mine);
    this.#attachments.set(key, tail);
    const done = () => {
      release();
      if (this.#attachments.get(key) === tail) this.#attachments.delete(key);
    };
    if (before === undefined) return done;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waitMs = this.#options.attachmentWaitMs ?? ATTACHMENT_WAIT_MS;
    const outcome = await Promise.race([
      before.then(() => "turn" as const),
      new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), waitMs);
      }),
      this.#stopping.promise.then(() => "stopped" as const),
    ]);
    clearTimeout(timer);
    if (outcome === "turn") return done;
    // Gave up: the next in line still waits for the one before this.
    done();
    return outcome;
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const start = performance.now();
    const read = await this.#readRequest(conn);
    if (read === undefined) return;
    const { request, stdin } = read;
    let reply = read.reply;
    const held: (() => void)[] = [];
    try {
      if (request !== undefined && stdin !== undefined) {
        reply = await this.#answer({ request, stdin }, conn, held).catch(
          (err: unknown) => {
            // runPlugin() answers every CNI failure itself: this is a bug.
            log.error("Failed to serve a request: {err}", {
              err: err instanceof Error ? err.stack ?? err.message : err,
            });
            return {
              code: 1,
              stdout: errorDocument(999, "The azure-vnet agent failed", {
                details: err instanceof Error ? err.message : String(err),
                stdin,
              }),
            };
          },
        );
      }
      if (reply !== undefined) await this.#reply(conn, reply, read.oversize);
    } finally {
      for (const release of held.reverse()) release();
      try {
        conn.close();
      } catch {
        // Closed by drain().
      }
    }
    // Nothing ran: not served (a hand-back is logged at debug).
    if (reply === undefined || reply.inProcess === true) return;
    const served = this.#logServed(request, reply, start);
    // After the slot is free: a log flush holds up no other request.
    await this.#options.onServed?.(served);
  }

  /**
   * Reads one request, within the read timeout and before any slot is
   * taken (so that VERSION, the probes' call, never waits behind ADDs).
   * Undefined when the peer went away without a complete frame; a reply
   * for a frame that breaks the protocol.
   */
  async #readRequest(conn: Deno.Conn): Promise<
    | {
      request?: AgentRequest;
      stdin?: Uint8Array;
      reply?: AgentReply;
      oversize: boolean;
    }
    | undefined
  > {
    const timeoutMs = this.#options.readTimeoutMs ?? REQUEST_READ_TIMEOUT_MS;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      conn.close();
    }, timeoutMs);
    try {
      const body = await readFrame(
        conn,
        this.#options.maxRequestBytes ?? MAX_REQUEST_BYTES,
      );
      if (body === undefined) {
        conn.close();
        return undefined;
      }
      const request = decodeRequest(body);
      let stdin: Uint8Array;
      try {
        stdin = Uint8Array.fromBase64(request.stdin);
      } catch {
        throw new FrameError("Malformed request: stdin is not base64");
      }
      return { request, stdin, oversize: false };
    } catch (err) {
      if (!(err instanceof FrameError)) {
        // The peer went away (or stalled) before its request was complete.
        log.warning("Dropped a connection: {err}", {
          err: timedOut
            ? `no complete request within ${timeoutMs} ms`
            : String(err),
        });
        if (!timedOut) conn.close();
        return undefined;
      }
      log.warning("Refused a request: {msg}", { msg: err.message });
      return { reply: frameErrorReply(err), oversize: err.oversize };
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs a request, or hands it back: VERSION at once; any other after the
   * earlier requests of its attachment and in a slot, unless its caller
   * hung up meanwhile (undefined: nothing ran). `held` gets the releases.
   */
  async #answer(
    incoming: { request: AgentRequest; stdin: Uint8Array },
    conn: Deno.Conn,
    held: (() => void)[],
  ): Promise<AgentReply | undefined> {
    const { request, stdin } = incoming;
    const { env } = request;
    const command = env.CNI_COMMAND ?? "";
    if (command === "VERSION") {
      const notReady = env[READINESS_VAR] === "1"
        ? this.#options.readiness?.()
        : undefined;
      if (notReady !== undefined) {
        return {
          code: 1,
          stdout: errorDocument(11, "The azure-vnet agent is not ready", {
            details: notReady,
            stdin,
          }),
        };
      }
      return await this.#run(request, stdin, { idle: (wait) => wait });
    }
    // Only a forwarder that knows the hand-back (it asks for progress
    // frames) can take one; an older one is served as before, unless the
    // agent must not run the request: then it gets code 11.
    const answer = await this.#options.handBack?.(request, stdin);
    const back = typeof answer === "string" ? { reason: answer } : answer;
    if (
      back !== undefined &&
      (request.progress === true || back.required === true)
    ) {
      const fields = {
        plugin: request.plugin,
        command,
        containerId: env.CNI_CONTAINERID ?? "",
        why: back.reason,
      };
      if (request.progress === true) {
        log.debug(
          "Handed back {plugin} {command} {containerId}: {why}",
          fields,
        );
      } else {
        log.warning(
          "Refused {plugin} {command} {containerId} with code 11: {why}; its plugin is older than the agent and cannot run it itself",
          fields,
        );
      }
      return handBackReply(back.reason);
    }
    if (this.#stopped) return this.#dropped(request, stdin);
    // "Held".
    if (!await sendProgress(conn, request)) return undefined;
    const hungUp = watchHangUp(conn);
    const id = env.CNI_CONTAINERID ?? "";
    if (id !== "" && ATTACHMENT_COMMANDS.has(command)) {
      const turn = await this.#attachment(
        `${request.plugin}\0${id}\0${env.CNI_IFNAME ?? ""}`,
      );
      if (turn === "stopped") return this.#dropped(request, stdin);
      if (turn === "late") {
        log.warning(
          "{plugin} {command} {containerId} {ifName}: an earlier call for it still runs after {seconds} s",
          {
            plugin: request.plugin,
            command,
            containerId: id,
            ifName: env.CNI_IFNAME ?? "",
            seconds: (this.#options.attachmentWaitMs ?? ATTACHMENT_WAIT_MS) /
              1000,
          },
        );
        return {
          code: 1,
          stdout: errorDocument(
            11,
            `An earlier call for container "${id}" still runs in the azure-vnet agent`,
            { stdin },
          ),
        };
      }
      held.push(turn);
    }
    if (await this.#slot({ started: false }) === "dropped") {
      return this.#dropped(request, stdin);
    }
    let slotted = true;
    held.push(() => {
      if (slotted) this.#release();
    });
    const context: RequestContext = {
      idle: async (wait) => {
        this.#release();
        slotted = false;
        try {
          return await wait;
        } finally {
          await this.#slot({ started: true });
          slotted = true;
        }
      },
    };
    // "Running", unless the caller is gone.
    if (hungUp() || !await sendProgress(conn, request)) {
      // The runtime gave up (killed its plugin): running it now would only
      // race the runtime's next call for the same pod.
      log.warning(
        "Dropped {plugin} {command} {containerId} {ifName}: its caller hung up before it ran",
        {
          plugin: request.plugin,
          command,
          containerId: id,
          ifName: env.CNI_IFNAME ?? "",
        },
      );
      return undefined;
    }
    return await this.#run(request, stdin, context);
  }

  /**
   * The reply to a request dropped unrun because the agent stops: handed
   * back, so a forwarder that asked for progress frames runs it in its own
   * process; an older one prints its code 11 (try again later) and the
   * runtime's retry reaches the fallback.
   */
  #dropped(request: AgentRequest, stdin: Uint8Array): AgentReply {
    log.info(
      "Dropped {plugin} {command} {containerId} {ifName} unrun: the agent is stopping ({to})",
      {
        plugin: request.plugin,
        command: request.env.CNI_COMMAND ?? "",
        containerId: request.env.CNI_CONTAINERID ?? "",
        ifName: request.env.CNI_IFNAME ?? "",
        to: request.progress === true
          ? "its plugin runs it"
          : "code 11 to a plugin older than the agent",
      },
    );
    return {
      code: 1,
      stdout: errorDocument(
        11,
        "The azure-vnet agent is stopping and did not run this call; try again",
        { stdin },
      ),
      inProcess: true,
    };
  }

  /** Sends the reply; a refused frame's body is read away first. */
  async #reply(
    conn: Deno.Conn,
    reply: AgentReply,
    oversize: boolean,
  ): Promise<void> {
    try {
      await writeAll(conn, encodeFrame(reply));
      // A refused frame's body is still coming: read it away so the peer
      // gets to read the reply instead of a reset.
      if (oversize) await drain(conn, 2000);
    } catch (err) {
      log.warning("Could not send the reply: {err}", { err: String(err) });
    }
  }

  /** Counts and logs an answered request. */
  #logServed(
    request: AgentRequest | undefined,
    reply: AgentReply,
    start: number,
  ): ServedRequest {
    this.#served++;
    const ms = performance.now() - start;
    const served: ServedRequest = {
      plugin: request?.plugin ?? "-",
      command: request?.env.CNI_COMMAND ?? "-",
      containerId: request?.env.CNI_CONTAINERID ?? "",
      ifName: request?.env.CNI_IFNAME ?? "",
      code: reply.code,
      seconds: ms / 1000,
    };
    // VERSION is what the DaemonSet's probes send every 10 and 20 s: debug,
    // so that the log keeps the pods' requests, not the probes'.
    const level = served.command === "VERSION" ? "debug" : "info";
    log[level](
      "served {plugin} {command} {containerId} {ifName}: code {code} in {ms} ms",
      {
        plugin: served.plugin,
        command: served.command,
        containerId: served.containerId,
        ifName: served.ifName,
        code: served.code,
        ms: ms.toFixed(1),
      },
    );
    return served;
  }

  async #run(
    request: AgentRequest,
    stdin: Uint8Array,
    context: RequestContext,
  ): Promise<AgentReply> {
    const plugin = this.#options.plugins[request.plugin];
    const handlers = typeof plugin.handlers === "function"
      ? plugin.handlers(context)
      : plugin.handlers;
    let stdout = "";
    const code = await runPlugin(handlers, plugin.info, {
      env: { ...request.env, AZURE_VNET_STATE_DIR: this.#options.stateDir },
      stdin,
      stdout: (text) => {
        stdout += text;
      },
      stderr: () => {},
      args: [],
    });
    return { code, stdout };
  }

  /**
   * Stops accepting, drops the requests that have not started (waiting for
   * a slot or for their attachment's earlier call, or read since), waits
   * for the ones running, then removes the socket file (when it is still
   * ours). Idempotent.
   *
   * A dropped request is handed back: a forwarder that asked for progress
   * frames runs it in its own process; an older one gets code 11 (try again
   * later). So a stop takes as long as the requests running take, not
   * those waiting too, within the DaemonSet's 45 s grace period.
   *
   * @returns When every request running has been answered.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopped = true;
      this.#stopping.resolve();
      const waiting = this.#queued;
      this.#queued = waiting.filter((q) => q.drop === undefined);
      for (const q of waiting) q.drop?.();
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
      await this.#accepting;
      await Promise.all([...this.#inFlight]);
      try {
        const info = await Deno.lstat(this.#options.socketPath);
        if (info.ino === this.#inode) {
          await Deno.remove(this.#options.socketPath);
        }
      } catch {
        // Gone already (Deno removes it when the listener closes).
      }
      log.info("Stopped after {served} requests", { served: this.#served });
    })();
    return this.#closing;
  }

  /** Same as {@link AgentServer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
