/**
 * The wire format between a thin plugin and `azure-vnet-agent` (#14): one
 * request and one reply per unix-socket connection, each a frame of a
 * 4-byte big-endian length and that many bytes of UTF-8 JSON.
 *
 * - request `{plugin, env, stdin, progress?}`: the plugin's name
 *   (`azure-vnet` or `azure-vnet-ipam`), its whole environment and its
 *   stdin in base64;
 * - with `progress`, up to two empty frames ({@link PROGRESS}): the agent
 *   holds the request; it runs it now;
 * - reply `{code, stdout, inProcess?}`: the exit code and the exact stdout
 *   text, or the request handed back unrun.
 *
 * The client sends nothing after its request and keeps its end open until
 * it has the reply: the agent takes the end of the connection for the
 * caller's death (its runtime killed it) and drops the request if it has
 * not started it.
 *
 * No imports at all: the plugins' entry points load this on every call.
 *
 * @module
 */

/** The socket's file name inside the state directory. */
export const AGENT_SOCKET_NAME = "azure-vnet-agent.sock";

/** The largest request body the agent reads (1 MiB). */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** The largest reply body the forwarder reads (16 MiB). */
export const MAX_REPLY_BYTES = 16 * 1024 * 1024;

/** The plugins the agent serves. */
export const AGENT_PLUGINS = ["azure-vnet", "azure-vnet-ipam"] as const;

/** One of {@link AGENT_PLUGINS}. */
export type AgentPlugin = (typeof AGENT_PLUGINS)[number];

/** One CNI invocation, as the forwarder sends it. */
export interface AgentRequest {
  /** Which plugin the runtime ran. */
  plugin: AgentPlugin;
  /** The plugin process's environment. */
  env: Record<string, string>;
  /** Its stdin, in base64. */
  stdin: string;
  /**
   * True when the forwarder reads {@link PROGRESS} frames ahead of the
   * reply: the first once the agent holds the request, the second just
   * before it runs it. A connection that ends between the two means that
   * the request never ran.
   */
  progress?: true;
}

/**
 * A progress frame: empty (a reply never is). See
 * {@link AgentRequest.progress}.
 */
export const PROGRESS: Uint8Array = new Uint8Array(4);

/** The agent's answer: what the plugin process prints and exits with. */
export interface AgentReply {
  /** The exit code. */
  code: number;
  /** stdout, byte for byte. */
  stdout: string;
  /**
   * True when the agent did not run the request and hands it back: the
   * plugin runs it in its own process (a delegate IPAM plugin the agent may
   * not exec). `code` and `stdout` are then an error for a forwarder that
   * predates the field.
   */
  inProcess?: true;
}

/** A frame that breaks the protocol: too large, truncated or malformed. */
export class FrameError extends Error {
  /** True when the declared length passed the limit. */
  readonly oversize: boolean;

  /**
   * Creates the error.
   *
   * @param message What is wrong.
   * @param options `oversize` when the length passed the limit.
   */
  constructor(message: string, options: { oversize?: boolean } = {}) {
    super(message);
    this.name = "FrameError";
    this.oversize = options.oversize ?? false;
  }
}

/**
 * The agent's socket path: `<state dir>/azure-vnet-agent.sock`, the state
 * dir being `AZURE_VNET_STATE_DIR` when set and not empty, else `/var/run`.
 *
 * @param env The environment.
 * @returns The absolute socket path.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { agentSocketPath } from "./frame.ts";
 * assert.equal(agentSocketPath({}), "/var/run/azure-vnet-agent.sock");
 * assert.equal(
 *   agentSocketPath({ AZURE_VNET_STATE_DIR: "/tmp/s/" }),
 *   "/tmp/s/azure-vnet-agent.sock",
 * );
 * ```
 */
export function agentSocketPath(
  env: Readonly<Record<string, string | undefined>>,
): string {
  const dir = (env.AZURE_VNET_STATE_DIR || "/var/run").replace(
    /(?<=.)\/+$/,
    "",
  );
  return `${dir}/${AGENT_SOCKET_NAME}`;
}

/**
 * Encodes a value as one frame (length prefix and JSON).
 *
 * @param value The request or reply.
 * @returns The frame's bytes.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame } from "./frame.ts";
 * const f = encodeFrame({ code: 0, stdout: "" });
 * assert.equal(new DataView(f.buffer).getUint32(0), f.length - 4);
 * ```
 */
export function encodeFrame(value: AgentRequest | AgentReply): Uint8Array {
  const body = new TextEncoder().encode(JSON.stringify(value));
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** Reads exactly `buf.length` bytes; false on EOF before the first byte. */
async function readFull(
  r: Pick<Deno.Conn, "read">,
  buf: Uint8Array,
): Promise<boolean> {
  let off = 0;
  while (off < buf.length) {
    const n = await r.read(buf.subarray(off));
    if (n === null) {
      if (off === 0) return false;
      throw new FrameError(`Truncated frame: ${off} of ${buf.length} bytes`);
    }
    off += n;
  }
  return true;
}

/**
 * Reads one frame's body, refusing a declared length above `maxBytes`
 * before reading any of it.
 *
 * @param r The connection.
 * @param maxBytes The limit of the body.
 * @returns The body, or undefined on EOF before any byte.
 * @throws {FrameError} On a truncated frame, or `oversize` past the limit.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeFrame, readFrame } from "./frame.ts";
 * const bytes = encodeFrame({ code: 0, stdout: "x" });
 * let off = 0;
 * const r = {
 *   read(p: Uint8Array): Promise<number | null> {
 *     if (off === bytes.length) return Promise.resolve(null);
 *     const n = Math.min(p.length, bytes.length - off);
 *     p.set(bytes.subarray(off, off + n));
 *     off += n;
 *     return Promise.resolve(n);
 *   },
 * };
 * const body = await readFrame(r, 100);
 * assert.equal(new TextDecoder().decode(body), '{"code":0,"stdout":"x"}');
 * ```
 */
export async function readFrame(
  r: Pick<Deno.Conn, "read">,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  const head = new Uint8Array(4);
  if (!await readFull(r, head)) return undefined;
  const length = new DataView(head.buffer).getUint32(0);
  if (length > maxBytes) {
    throw new FrameError(
      `Frame of ${length} bytes is larger than the limit of ${maxBytes}`,
      { oversize: true },
    );
  }
  const body = new Uint8Array(length);
  if (length > 0 && !await readFull(r, body)) {
    throw new FrameError(`Truncated frame: 0 of ${length} bytes`);
  }
  return body;
}

function parseJson(body: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch (err) {
    throw new FrameError(
      `Malformed frame: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Decodes and checks a request body.
 *
 * @param body The frame body.
 * @returns The request; `stdin` is still base64.
 * @throws {FrameError} When it is not a well-formed request.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRequest } from "./frame.ts";
 * const body = new TextEncoder().encode(
 *   '{"plugin":"azure-vnet","env":{"CNI_COMMAND":"VERSION"},"stdin":""}',
 * );
 * assert.equal(decodeRequest(body).plugin, "azure-vnet");
 * ```
 */
export function decodeRequest(body: Uint8Array): AgentRequest {
  const v = parseJson(body);
  if (!isObject(v)) throw new FrameError("Malformed request: not an object");
  const { plugin, env, stdin } = v;
  if (!(AGENT_PLUGINS as readonly unknown[]).includes(plugin)) {
    throw new FrameError(`Unknown plugin ${JSON.stringify(plugin)}`);
  }
  if (
    !isObject(env) || !Object.values(env).every((x) => typeof x === "string")
  ) {
    throw new FrameError("Malformed request: env must map names to strings");
  }
  if (typeof stdin !== "string") {
    throw new FrameError("Malformed request: stdin must be base64 text");
  }
  const request: AgentRequest = {
    plugin: plugin as AgentPlugin,
    env: env as Record<string, string>,
    stdin,
  };
  if (v.progress === true) request.progress = true;
  return request;
}

/**
 * Decodes and checks a reply body.
 *
 * @param body The frame body.
 * @returns The reply.
 * @throws {FrameError} When it is not a well-formed reply.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeReply } from "./frame.ts";
 * const body = new TextEncoder().encode('{"code":1,"stdout":"{}\\n"}');
 * assert.deepEqual(decodeReply(body), { code: 1, stdout: "{}\n" });
 * ```
 */
export function decodeReply(body: Uint8Array): AgentReply {
  const v = parseJson(body);
  if (
    !isObject(v) || !Number.isInteger(v.code) || typeof v.stdout !== "string"
  ) {
    throw new FrameError("Malformed reply: expected {code, stdout}");
  }
  const reply: AgentReply = { code: v.code as number, stdout: v.stdout };
  if (v.inProcess === true) reply.inProcess = true;
  return reply;
}

/**
 * A CNI error document as a plugin prints it (pretty JSON and a newline),
 * for errors of the transport itself. The `cniVersion` is the config's
 * when stdin holds one, else `1.1.0`.
 *
 * @param code The CNI error code (11: try again later).
 * @param msg The message.
 * @param options `details` and the request's `stdin` bytes.
 * @returns The stdout text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { errorDocument } from "./frame.ts";
 * const doc = JSON.parse(errorDocument(11, "agent gone", {
 *   stdin: new TextEncoder().encode('{"cniVersion":"0.4.0"}'),
 * }));
 * assert.deepEqual(doc, { cniVersion: "0.4.0", code: 11, msg: "agent gone" });
 * ```
 */
export function errorDocument(
  code: number,
  msg: string,
  options: { details?: string; stdin?: Uint8Array } = {},
): string {
  let version = "1.1.0";
  try {
    const v = (JSON.parse(new TextDecoder().decode(options.stdin)) as {
      cniVersion?: unknown;
    }).cniVersion;
    if (typeof v === "string" && /^\d+\.\d+\.\d+$/.test(v)) version = v;
  } catch {
    // No config: the latest version.
  }
  const doc: Record<string, unknown> = { cniVersion: version, code, msg };
  if (options.details !== undefined && options.details !== "") {
    doc.details = options.details;
  }
  return `${JSON.stringify(doc, null, 2)}\n`;
}
