/**
 * The plugin dispatcher: reads the `CNI_*` environment and stdin, validates
 * them as the reference skel does, calls the handler, and writes exactly one
 * JSON document (the result or the error object) to stdout.
 *
 * Order of checks: `CNI_COMMAND` (4), VERSION answered from stdin alone,
 * then the environment (3/4, naming each variable), stdin (5), the config
 * (6/7), its version (1), the command's minimum version (4), `CNI_ARGS`
 * (4/2), and the handler. A missing handler answers code 4.
 *
 * Human use: `--version` prints `<name> <version>` on stdout (exit 0);
 * `--help` prints usage on stderr (exit 0). Without `CNI_COMMAND` the usage
 * goes to stderr too, plus the error object (code 4) on stdout, and the exit
 * code is 1: a non-zero exit always comes with the error JSON.
 *
 * @module
 */
import { concatBytes } from "./bytes.ts";
import { getLogger } from "@logtape/logtape";
import { parseCniArgs } from "./args.ts";
import { decodeConfig, ID_PATTERN, parseNetConf } from "./config.ts";
import { CniError, CODES, flattenCause } from "./errors.ts";
import { redactSecrets } from "./redact.ts";
import {
  type CmdArgs,
  type CniCommand,
  type NetConf,
  type PluginHandlers,
  SUPPORTED_VERSIONS,
} from "./spec.ts";
import {
  checkCommandVersion,
  convertResult,
  isSupportedVersion,
  negotiateVersion,
} from "./version.ts";

/** What a plugin says about itself. */
export interface PluginInfo {
  /** The binary name, such as `azure-vnet`. */
  name: string;
  /** Its version, such as `0.1.0`. */
  version: string;
  /** One line for the usage text. */
  about?: string;
}

/** Injectable process I/O for {@link runPlugin}; defaults to the process. */
export interface SkelIo {
  /** The environment; default `Deno.env.toObject()`. */
  env?: Readonly<Record<string, string>>;
  /**
   * stdin; default the process's stdin, read with `Deno.stdin.read()` (not
   * `Deno.stdin.readable`, whose web streams cost milliseconds to load).
   */
  stdin?: StdinSource;
  /** Receives the stdout document; default writes to `Deno.stdout`. */
  stdout?: (text: string) => void;
  /** Receives human text; default writes to `Deno.stderr`. */
  stderr?: (text: string) => void;
  /** argv; default `Deno.args`. */
  args?: readonly string[];
}

const COMMANDS: readonly CniCommand[] = [
  "ADD",
  "DEL",
  "CHECK",
  "VERSION",
  "STATUS",
  "GC",
];

const NEEDS: Record<string, readonly CniCommand[]> = {
  CNI_CONTAINERID: ["ADD", "DEL", "CHECK"],
  CNI_NETNS: ["ADD", "CHECK"],
  CNI_IFNAME: ["ADD", "DEL", "CHECK"],
  CNI_PATH: ["ADD", "CHECK", "DEL", "GC", "STATUS"],
};

const LATEST = SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1] ?? "1.1.0";

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string) {
  const data = new TextEncoder().encode(text);
  let off = 0;
  while (off < data.length) off += file.writeSync(data.subarray(off));
}

function defaultStdout(text: string): void {
  writeAll(Deno.stdout, text);
}

function defaultStderr(text: string): void {
  writeAll(Deno.stderr, text);
}

/** Where stdin comes from: bytes, a stream, or a `read()`-able file. */
export type StdinSource =
  | Uint8Array
  | ReadableStream<Uint8Array>
  | Pick<Deno.FsFile, "read">;

async function readReader(
  reader: Pick<Deno.FsFile, "read">,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await reader.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  return concatBytes(chunks);
}

async function readAll(stdin: StdinSource): Promise<Uint8Array> {
  if (stdin instanceof Uint8Array) return stdin;
  try {
    // Not `instanceof ReadableStream`: touching the web streams global is
    // what this avoids for the process's own stdin.
    if ("read" in stdin) return await readReader(stdin);
    return new Uint8Array(await new Response(stdin).arrayBuffer());
  } catch (err) {
    throw new CniError(CODES.ioFailure, "Cannot read stdin", { cause: err });
  }
}

function usage(info: PluginInfo): string {
  return [
    `${info.name} ${info.version}${info.about ? `: ${info.about}` : ""}`,
    "",
    "A CNI plugin: a container runtime runs it with CNI_COMMAND and the other",
    "CNI_* variables set, and the network config on stdin.",
    "",
    `Usage: CNI_COMMAND=VERSION ${info.name} <<< '{"cniVersion":"1.1.0"}'`,
    `       ${info.name} --version | --help`,
    "",
    `CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(", ")}`,
    "",
  ].join("\n");
}

/** C0 control characters and DEL. */
// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\x00-\x1f\x7f]/;

/**
 * Validates `CNI_IFNAME` as the reference library does, and also refuses
 * `%` (the kernel would take `eth%d` as a name template and pick another
 * name) and control characters.
 *
 * @param name The interface name.
 * @returns Why it is invalid, or undefined when valid.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ifNameProblem } from "./skel.ts";
 * assert.equal(ifNameProblem("eth0"), undefined);
 * assert.match(ifNameProblem("a/b") ?? "", /must not contain/);
 * assert.match(ifNameProblem("eth%d") ?? "", /must not contain %/);
 * ```
 */
export function ifNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (new TextEncoder().encode(name).length > 15) {
    return "is longer than 15 bytes";
  }
  if (name === "." || name === "..") return "must not be . or ..";
  if (CONTROL_CHARS.test(name)) return "must not contain control characters";
  if (/[/:\s]/.test(name)) {
    return "must not contain /, : or whitespace";
  }
  if (name.includes("%")) {
    return "must not contain % (the kernel takes it as a name template)";
  }
  return undefined;
}

/** Why a non-empty `CNI_NETNS` is invalid, or undefined when valid. */
function netnsProblem(netns: string): string | undefined {
  if (CONTROL_CHARS.test(netns)) return "must not contain control characters";
  if (!netns.startsWith("/")) return "must be an absolute path";
  return undefined;
}

function checkEnv(command: CniCommand, env: Readonly<Record<string, string>>) {
  const missing = Object.entries(NEEDS)
    .filter(([k, cmds]) => cmds.includes(command) && (env[k] ?? "") === "")
    .map(([k]) => k);
  if (missing.includes("CNI_CONTAINERID")) {
    throw new CniError(
      CODES.unknownContainer,
      `Missing environment variable CNI_CONTAINERID for ${command}`,
    );
  }
  if (missing.length > 0) {
    throw new CniError(
      CODES.invalidEnvironment,
      `Missing environment variable${missing.length > 1 ? "s" : ""} ${
        missing.join(", ")
      } for ${command}`,
    );
  }
  const cid = env.CNI_CONTAINERID ?? "";
  if (cid !== "" && !ID_PATTERN.test(cid)) {
    throw new CniError(
      CODES.invalidEnvironment,
      `Invalid CNI_CONTAINERID ${
        JSON.stringify(cid)
      }: must start with a letter or digit, followed by letters, digits, _ . or -`,
    );
  }
  const ifName = env.CNI_IFNAME ?? "";
  if (NEEDS.CNI_IFNAME?.includes(command) || ifName !== "") {
    const problem = ifNameProblem(ifName);
    if (problem !== undefined) {
      throw new CniError(
        CODES.invalidEnvironment,
        `Invalid CNI_IFNAME ${JSON.stringify(ifName)}: ${problem}`,
      );
    }
  }
  // DEL may come with an empty CNI_NETNS (the netns is gone): only a given
  // value is checked.
  const netns = env.CNI_NETNS ?? "";
  if (netns !== "") {
    const problem = netnsProblem(netns);
    if (problem !== undefined) {
      throw new CniError(
        CODES.invalidEnvironment,
        `Invalid CNI_NETNS ${JSON.stringify(netns)}: ${problem}`,
      );
    }
  }
}

function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const msg = err instanceof Error && err.message !== ""
    ? err.message
    : "Internal error";
  const details = flattenCause(err);
  return new CniError(CODES.internal, msg, {
    cause: err,
    details: details === msg ? "" : details,
  });
}

/**
 * The error as printed: `msg` and `details` without URL credentials or query
 * values (the error object ends up in kubelet events), whoever built it.
 */
function redacted(err: CniError): CniError {
  const msg = redactSecrets(err.message);
  const details = redactSecrets(err.details ?? "");
  if (msg === err.message && details === (err.details ?? "")) return err;
  return new CniError(err.code, msg, { details });
}

/** The state of one invocation, for the error object and the log line. */
interface Invocation {
  command: string;
  containerId: string;
  ifName: string;
  version: string;
  /** stdin, once read. */
  stdin?: Uint8Array;
}

async function dispatch(
  handlers: PluginHandlers,
  env: Readonly<Record<string, string>>,
  stdinSource: StdinSource,
  inv: Invocation,
): Promise<string | undefined> {
  const rawCommand = env.CNI_COMMAND ?? "";
  if (rawCommand === "") {
    throw new CniError(
      CODES.invalidEnvironment,
      "Missing environment variable CNI_COMMAND",
    );
  }
  if (!(COMMANDS as readonly string[]).includes(rawCommand)) {
    throw new CniError(
      CODES.invalidEnvironment,
      `Unknown CNI_COMMAND ${JSON.stringify(rawCommand)}`,
    );
  }
  const command = rawCommand as CniCommand;
  if (command === "VERSION") {
    const stdin = await readAll(stdinSource);
    const text = new TextDecoder().decode(stdin);
    const input = text.trim() === "" ? {} : decodeConfig(stdin);
    const v = input.cniVersion;
    const version = typeof v === "string" && v !== "" ? v : "0.2.0";
    if (isSupportedVersion(version)) inv.version = version;
    return JSON.stringify({
      cniVersion: version,
      supportedVersions: [...SUPPORTED_VERSIONS],
    });
  }
  checkEnv(command, env);
  const stdin = await readAll(stdinSource);
  inv.stdin = stdin;
  const config: NetConf = parseNetConf(stdin);
  const version = negotiateVersion(config.cniVersion);
  inv.version = version;
  checkCommandVersion(command, version);
  const rawArgs = env.CNI_ARGS ?? "";
  const args: CmdArgs = {
    command,
    containerId: env.CNI_CONTAINERID ?? "",
    netns: env.CNI_NETNS ?? "",
    ifName: env.CNI_IFNAME ?? "",
    args: parseCniArgs(rawArgs, {
      // DEL must not fail on an argument it does not know.
      ignoreUnknown: command === "DEL",
    }),
    rawArgs,
    path: (env.CNI_PATH ?? "").split(":").filter((p) => p !== ""),
    stdin,
    config,
    env,
  };
  const notSupported = (): CniError =>
    new CniError(
      CODES.invalidEnvironment,
      `CNI_COMMAND ${command} is not supported by this plugin`,
    );
  switch (command) {
    case "ADD": {
      const result = await handlers.cmdAdd(args);
      return JSON.stringify(convertResult(result, version), null, 2);
    }
    case "DEL":
      await handlers.cmdDel(args);
      return undefined;
    case "CHECK":
      if (handlers.cmdCheck === undefined) throw notSupported();
      await handlers.cmdCheck(args);
      return undefined;
    case "STATUS":
      if (handlers.cmdStatus === undefined) throw notSupported();
      await handlers.cmdStatus(args);
      return undefined;
    case "GC":
      if (handlers.cmdGc === undefined) throw notSupported();
      await handlers.cmdGc(args);
      return undefined;
  }
}

function guessVersion(stdin: Uint8Array | undefined): string {
  if (stdin === undefined) return LATEST;
  try {
    const v = (JSON.parse(new TextDecoder().decode(stdin)) as {
      cniVersion?: unknown;
    }).cniVersion;
    return isSupportedVersion(v) ? v : LATEST;
  } catch {
    return LATEST;
  }
}

/**
 * Runs a plugin's handlers for one CNI invocation and returns the exit code.
 *
 * stdout gets at most one JSON document: the ADD result converted to the
 * config's `cniVersion`, the VERSION reply, or on failure the error object
 * `{cniVersion, code, msg, details}` (exit 1). A `CniError` passes through;
 * any other exception becomes code 999 with the flattened cause chain in
 * `details`. Stack traces never reach stdout. One log line per command gives
 * the command, container id, interface, outcome and duration.
 *
 * @param handlers The plugin's `cmdAdd`, `cmdDel`, … handlers.
 * @param info The plugin's name and version.
 * @param io Injectable environment, stdin, stdout, stderr and argv.
 * @returns 0 on success, 1 after printing an error object.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { runPlugin } from "./skel.ts";
 * let out = "";
 * const code = await runPlugin(
 *   { cmdAdd: () => Promise.reject(new Error("unused")), cmdDel: () => Promise.resolve() },
 *   { name: "demo", version: "0.1.0" },
 *   {
 *     env: { CNI_COMMAND: "VERSION" },
 *     stdin: new TextEncoder().encode('{"cniVersion":"1.0.0"}'),
 *     stdout: (t) => out += t,
 *     args: [],
 *   },
 * );
 * assert.equal(code, 0);
 * assert.equal(JSON.parse(out).cniVersion, "1.0.0");
 * ```
 */
export async function runPlugin(
  handlers: PluginHandlers,
  info: PluginInfo,
  io: SkelIo = {},
): Promise<number> {
  const stdout = io.stdout ?? defaultStdout;
  const stderr = io.stderr ?? defaultStderr;
  const argv = io.args ?? Deno.args;
  if (argv.includes("--version")) {
    stdout(`${info.name} ${info.version}\n`);
    return 0;
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    stderr(usage(info));
    return 0;
  }
  const env = io.env ?? Deno.env.toObject();
  if ((env.CNI_COMMAND ?? "") === "") stderr(usage(info));
  const stdin: StdinSource = io.stdin ?? Deno.stdin;
  const logger = getLogger([info.name]);
  const inv: Invocation = {
    command: env.CNI_COMMAND ?? "",
    containerId: env.CNI_CONTAINERID ?? "",
    ifName: env.CNI_IFNAME ?? "",
    version: "",
  };
  const start = performance.now();
  let code = 0;
  let text: string | undefined;
  let failure: CniError | undefined;
  try {
    text = await dispatch(handlers, env, stdin, inv);
  } catch (err) {
    failure = redacted(toCniError(err));
    const version = inv.version !== "" ? inv.version : guessVersion(
      inv.stdin ?? (stdin instanceof Uint8Array ? stdin : undefined),
    );
    text = JSON.stringify(failure.toJSON(version), null, 2);
    code = 1;
  }
  if (text !== undefined) stdout(`${text}\n`);
  const ms = (performance.now() - start).toFixed(1);
  const fields = { ...inv, ms };
  if (failure === undefined) {
    logger.info("{command} {containerId} {ifName}: ok in {ms} ms", fields);
  } else {
    logger.error(
      "{command} {containerId} {ifName}: error {code} {msg} ({details}) in {ms} ms",
      {
        ...fields,
        code: failure.code,
        msg: failure.message,
        details: failure.details ?? "",
      },
    );
  }
  return code;
}
