/**
 * Exec of delegated plugins (spec §4): the binary is found on `CNI_PATH`,
 * run with the same environment (`CNI_COMMAND` set), the complete config on
 * stdin and its stderr passed through; its stdout is decoded as a result or
 * as an error object, which is re-thrown as a {@link CniError} with the
 * delegate's code.
 *
 * "The same environment" has one exception: the dynamic linker's variables
 * (`LD_*`, and `DYLD_*`, their macOS spelling) are dropped. containerd 1.6
 * passes `LD_LIBRARY_PATH=/opt/containerd/lib:` to every plugin; Deno
 * refuses to spawn a child with such a variable unless `--allow-run` is
 * unrestricted (our launcher scopes it), and they would let a runtime's
 * library directory, or the current directory (the trailing `:`), choose
 * the delegate's libraries. Every other variable (`CNI_*`, `PATH`, our
 * `AZURE_VNET_*` overrides) is passed on unchanged, whatever its size.
 *
 * @module
 */
import { CniError, CODES, PLUGIN_CODES } from "./errors.ts";
import type { CmdArgs, CniCommand, Result } from "./spec.ts";
import { parseResult } from "./version.ts";

/** What an exec returns. */
export interface ExecOutput {
  /** The exit code. */
  code: number;
  /** Everything written to stdout. */
  stdout: Uint8Array;
  /** The tail of stderr, for the error details (it is also passed through). */
  stderr?: string;
}

/** Runs a plugin binary; injectable for tests. */
export type PluginExec = (
  binary: string,
  options: {
    env: Readonly<Record<string, string>>;
    stdin: Uint8Array;
    signal?: AbortSignal;
  },
) => Promise<ExecOutput>;

/** Options of {@link execPlugin}. */
export interface ExecPluginOptions {
  /** The caller's invocation: env, stdin and path default to it. */
  args?: CmdArgs;
  /**
   * The environment (default `args.env`); `CNI_COMMAND` is overridden and
   * `LD_*`/`DYLD_*` variables are dropped.
   */
  env?: Readonly<Record<string, string>>;
  /** The complete config (default `args.stdin`). */
  stdin?: Uint8Array;
  /** Directories to search (default `args.path`, else `env.CNI_PATH`). */
  path?: readonly string[];
  /** Injectable exec; default runs the binary with `Deno.Command`. */
  exec?: PluginExec;
  /** Aborts the delegate (kills it). */
  signal?: AbortSignal;
  /** Where the delegate's stderr goes; default `Deno.stderr`. */
  stderr?: (chunk: Uint8Array) => void;
}

const STDERR_TAIL = 2048;

function passStderr(chunk: Uint8Array): void {
  let off = 0;
  while (off < chunk.length) {
    off += Deno.stderr.writeSync(chunk.subarray(off));
  }
}

function makeDefaultExec(stderrSink: (chunk: Uint8Array) => void): PluginExec {
  return async function defaultExec(binary, options) {
    const cmd = new Deno.Command(binary, {
      env: { ...options.env },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    const child = cmd.spawn();
    const writer = child.stdin.getWriter();
    const feed = writer.write(options.stdin).then(() => writer.close()).catch(
      () => {/* the delegate may exit without reading stdin */},
    );
    let tail = "";
    const dec = new TextDecoder();
    const drainErr = (async () => {
      for await (const chunk of child.stderr) {
        stderrSink(chunk);
        tail = (tail + dec.decode(chunk, { stream: true })).slice(
          -STDERR_TAIL,
        );
      }
    })();
    const stdoutP = new Response(child.stdout).arrayBuffer();
    const [status, out] = await Promise.all([child.status, stdoutP]);
    await Promise.all([feed, drainErr]);
    return {
      code: status.code,
      stdout: new Uint8Array(out),
      stderr: tail,
    };
  };
}

/**
 * Whether `file` is an executable regular file. Only "not there" is false:
 * a refusal (Deno's permissions, the OS) is an error of its own, since the
 * file may well be there.
 */
async function isExecutable(file: string, type: string): Promise<boolean> {
  try {
    const st = await Deno.stat(file);
    return st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0;
  } catch (err) {
    if (
      err instanceof Deno.errors.NotFound ||
      err instanceof Deno.errors.NotADirectory
    ) return false;
    const why = err instanceof Deno.errors.NotCapable
      ? `this process has no read permission (--allow-read) on "${file}"`
      : err instanceof Deno.errors.PermissionDenied
      ? `permission denied on "${file}"`
      : `cannot stat "${file}"`;
    throw new CniError(
      CODES.ioFailure,
      `Cannot look for plugin "${type}" in CNI_PATH: ${why}`,
      { cause: err },
    );
  }
}

/**
 * Finds a plugin binary on the search path.
 *
 * @param type The plugin type (binary name, no `/`).
 * @param path The directories to search, in order.
 * @returns The full path of the first executable match.
 * @throws {CniError} Code 7 when the type is invalid or nothing is found;
 * the message names the type and the path. Code 5 when a candidate cannot
 * be looked at (no read permission for this process, a refusal of the
 * OS): it may be there, so the search stops rather than report "not
 * found" or run a later match; the message names the permission and the
 * path.
 *
 * @example Usage
 * ```ts ignore
 * const bin = await findPlugin("host-local", ["/usr/lib/cni"]);
 * ```
 */
export async function findPlugin(
  type: string,
  path: readonly string[],
): Promise<string> {
  if (type === "" || type.includes("/") || type === "." || type === "..") {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid plugin type ${JSON.stringify(type)}: must be a file name`,
    );
  }
  for (const dir of path) {
    if (dir === "") continue;
    const file = `${dir.replace(/\/+$/, "")}/${type}`;
    if (await isExecutable(file, type)) return file;
  }
  throw new CniError(
    CODES.invalidConfig,
    `Cannot find plugin "${type}" in CNI_PATH "${path.join(":")}"`,
  );
}

/** True for the dynamic linker's variables, which a delegate does not get. */
function isLoaderVariable(name: string): boolean {
  return name.startsWith("LD_") || name.startsWith("DYLD_");
}

function delegateEnv(
  env: Readonly<Record<string, string>>,
  command: CniCommand,
): Record<string, string> {
  // fromEntries defines own properties, even for a variable "__proto__".
  const out: Record<string, string> = Object.fromEntries(
    Object.entries(env).filter(([name]) => !isLoaderVariable(name)),
  );
  out.CNI_COMMAND = command;
  return out;
}

function decodeJson(bytes: Uint8Array): unknown {
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") return undefined;
  return JSON.parse(text);
}

/**
 * Runs a delegated plugin and decodes its answer.
 *
 * The child gets exactly the given environment (no other inherited
 * variable) without its `LD_*`/`DYLD_*` variables and with `CNI_COMMAND`
 * set to `command`, and the config bytes on stdin. Its stderr is passed
 * through as it arrives.
 *
 * @param type The plugin type, searched on the path.
 * @param command The CNI command to run.
 * @param options The invocation (`args`, or `env` + `stdin`), path, exec.
 * @returns The decoded stdout JSON document, or undefined when stdout was
 * empty (DEL, CHECK, GC, STATUS).
 * @throws {CniError} The delegate's own code and message when it printed an
 * error object; code 109 when it failed without a parsable one, or printed
 * unparsable JSON on success; code 7 when the binary is not found, 5 when
 * the lookup was refused (see {@link findPlugin}).
 *
 * @example Usage
 * ```ts ignore
 * const out = await execPlugin("host-local", "ADD", { args });
 * ```
 */
export async function execPlugin(
  type: string,
  command: CniCommand,
  options: ExecPluginOptions,
): Promise<unknown> {
  const baseEnv = options.env ?? options.args?.env;
  const stdin = options.stdin ?? options.args?.stdin;
  if (baseEnv === undefined || stdin === undefined) {
    throw new TypeError(
      `Cannot exec plugin "${type}": options need args, or env and stdin`,
    );
  }
  const path = options.path ?? options.args?.path ??
    (baseEnv.CNI_PATH ?? "").split(":");
  const binary = await findPlugin(type, path);
  const exec = options.exec ?? makeDefaultExec(options.stderr ?? passStderr);
  const env = delegateEnv(baseEnv, command);
  let out: ExecOutput;
  try {
    out = await exec(binary, {
      env,
      stdin,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch (err) {
    if (err instanceof CniError) throw err;
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `Cannot run plugin "${type}" for ${command}`,
      { cause: err },
    );
  }
  let doc: unknown;
  let parseError: unknown;
  try {
    doc = decodeJson(out.stdout);
  } catch (err) {
    parseError = err;
  }
  if (out.code !== 0) {
    if (typeof doc === "object" && doc !== null) {
      const e = doc as Record<string, unknown>;
      if (typeof e.code === "number" && typeof e.msg === "string") {
        const details = typeof e.details === "string" ? e.details : undefined;
        throw new CniError(
          e.code,
          e.msg,
          details === undefined ? {} : { details },
        );
      }
    }
    const text = new TextDecoder().decode(out.stdout).trim();
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `Plugin "${type}" failed ${command} with exit code ${out.code} and no parsable error`,
      { details: (text !== "" ? text : out.stderr ?? "").trim().slice(-1000) },
    );
  }
  if (parseError !== undefined) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `Cannot decode the ${command} output of plugin "${type}"`,
      { cause: parseError },
    );
  }
  return doc;
}

/**
 * Runs the delegate's ADD and returns its result in the internal shape.
 *
 * @param type The plugin type.
 * @param options As for {@link execPlugin}.
 * @returns The parsed result (`cniVersion` is the delegate's version).
 * @throws {CniError} As {@link execPlugin}; code 109 when the delegate
 * printed no result or one that cannot be decoded.
 *
 * @example Usage
 * ```ts ignore
 * const result = await delegateAdd(args.config.ipam.type, { args });
 * ```
 */
export async function delegateAdd(
  type: string,
  options: ExecPluginOptions,
): Promise<Result> {
  const doc = await execPlugin(type, "ADD", options);
  if (doc === undefined) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `Plugin "${type}" printed no result for ADD`,
    );
  }
  try {
    return parseResult(doc);
  } catch (err) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `Cannot decode the ADD result of plugin "${type}"`,
      { cause: err },
    );
  }
}

/**
 * Runs the delegate's DEL, CHECK, GC or STATUS; success means no error.
 *
 * @param type The plugin type.
 * @param command The command.
 * @param options As for {@link execPlugin}.
 * @throws {CniError} As {@link execPlugin}.
 *
 * @example Usage
 * ```ts ignore
 * await delegateCommand(args.config.ipam.type, "DEL", { args });
 * ```
 */
export async function delegateCommand(
  type: string,
  command: Exclude<CniCommand, "ADD" | "VERSION">,
  options: ExecPluginOptions,
): Promise<void> {
  await execPlugin(type, command, options);
}

/** A VERSION reply. */
export interface VersionInfo {
  cniVersion: string;
  supportedVersions: string[];
}

/**
 * Asks a delegate which versions it supports.
 *
 * @param type The plugin type.
 * @param options As for {@link execPlugin}; `stdin` may be
 * `{"cniVersion": …}` only.
 * @returns The reply.
 * @throws {CniError} As {@link execPlugin}; code 109 for a bad reply.
 *
 * @example Usage
 * ```ts ignore
 * const info = await delegateVersion("host-local", { env, stdin, path });
 * ```
 */
export async function delegateVersion(
  type: string,
  options: ExecPluginOptions,
): Promise<VersionInfo> {
  const doc = await execPlugin(type, "VERSION", options);
  const o = doc as Partial<VersionInfo> | undefined;
  if (
    typeof o?.cniVersion !== "string" || !Array.isArray(o.supportedVersions)
  ) {
    throw new CniError(
      PLUGIN_CODES.delegateFailed,
      `Plugin "${type}" gave no valid VERSION reply`,
    );
  }
  return { cniVersion: o.cniVersion, supportedVersions: o.supportedVersions };
}
