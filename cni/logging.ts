/**
 * Sink setup for entry points: the only module that configures logtape.
 * Library code only calls `getLogger([...])`, which does nothing until an
 * entry point configures a sink here.
 *
 * Both plugin binaries call {@link startPluginLogging}; a long-running
 * process calls {@link configureLogging} with a `flushIntervalMs`. Records
 * are buffered in memory and written once per process (and per file) at
 * disposal, under a lock, into a log rotated at `maxBytes` (see
 * `log_file_sink.ts`), one escaped and redacted line each (see
 * `log_format.ts`).
 *
 * @module
 */
import { configure, type LogLevel, reset, type Sink } from "@logtape/logtape";
import { LogFileSink, type LogFileSinkOptions } from "./log_file_sink.ts";

/** The level names a config's `logLevel` may use. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevelName = (typeof LOG_LEVELS)[number];

/**
 * Whether an entry point should open its log file for this invocation.
 *
 * `CNI_COMMAND=VERSION`, `--version` and `--help` answer from the binary
 * alone: they touch neither the log file nor any state, so they skip sink
 * setup (and its cost). Every other invocation logs, including one without
 * `CNI_COMMAND` (its usage error is logged).
 *
 * @param env The process environment.
 * @param args The command-line arguments.
 * @returns False for VERSION, `--version`, `--help` and `-h`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { wantsLogFile } from "./logging.ts";
 * assert.ok(!wantsLogFile({ CNI_COMMAND: "VERSION" }, []));
 * assert.ok(wantsLogFile({ CNI_COMMAND: "ADD" }, []));
 * assert.ok(!wantsLogFile({}, ["--version"]));
 * ```
 */
export function wantsLogFile(
  env: Readonly<Record<string, string | undefined>>,
  args: readonly string[],
): boolean {
  if (env.CNI_COMMAND === "VERSION") return false;
  return !args.some((a) => a === "--version" || a === "--help" || a === "-h");
}

/** Options of {@link configureLogging}. */
export interface LoggingOptions extends Omit<LogFileSinkOptions, "formatter"> {
  /** The log file, such as `/var/log/azure-vnet.log` (created 0640). */
  file: string;
  /** The lowest level written; default `info`. `warn` means `warning`. */
  level?: string;
  /**
   * Top-level categories whose records go to their own file instead of
   * `file`, such as `{ "azure-vnet-ipam": "/var/log/azure-vnet-ipam.log" }`
   * for an IPAM engine running in process (each created 0640 on its first
   * record, and rotated like `file`).
   */
  categoryFiles?: Readonly<Record<string, string>>;
}

/**
 * Maps a level name (case-insensitive; `warn` is accepted for `warning`).
 *
 * @param level The name.
 * @returns The logtape level.
 * @throws {RangeError} For an unknown name.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseLogLevel } from "./logging.ts";
 * assert.equal(parseLogLevel("WARN"), "warning");
 * ```
 */
export function parseLogLevel(level: string): LogLevelName {
  const l = level.toLowerCase();
  const name = l === "warn" ? "warning" : l;
  if (!(LOG_LEVELS as readonly string[]).includes(name)) {
    throw new RangeError(
      `Invalid log level "${level}": expected one of ${LOG_LEVELS.join(", ")}`,
    );
  }
  return name as LogLevel & LogLevelName;
}

/**
 * Configured logging: logtape's sinks for one process, with their buffers.
 * Made by {@link configureLogging} or {@link startPluginLogging}; dispose it
 * (`await using`) before exit to write the buffered lines.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLogger } from "@logtape/logtape";
 * import { configureLogging } from "./logging.ts";
 * const dir = await Deno.makeTempDir();
 * {
 *   await using logs = await configureLogging({ file: `${dir}/p.log` });
 *   getLogger(["demo"]).debug("hidden");
 *   await logs.setLevel("debug");
 *   getLogger(["demo"]).debug("shown");
 * }
 * assert.match(await Deno.readTextFile(`${dir}/p.log`), /^[^\n]*shown\n$/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class Logging implements AsyncDisposable {
  #files: readonly LogFileSink[];
  #categories: readonly string[];
  #level: LogLevelName | undefined;

  /**
   * Use {@link configureLogging} or {@link startPluginLogging}.
   *
   * @param files The main file's sink first, then one per category.
   * @param categories The category of each sink after the first.
   */
  constructor(files: readonly LogFileSink[], categories: readonly string[]) {
    this.#files = files;
    this.#categories = categories;
  }

  /**
   * Switches logtape to `level` (no-op when unchanged or without a file).
   * Buffered lines stay buffered: nothing is written until disposal.
   *
   * @param level `debug`, `info`, `warning` or `error` (`warn` accepted).
   * @returns When logtape is reconfigured.
   * @throws {RangeError} For an unknown level.
   */
  async setLevel(level: string): Promise<void> {
    const name = parseLogLevel(level);
    if (name === this.#level || this.#files.length === 0) return;
    const sinks: Record<string, Sink> = {};
    const loggers: Parameters<typeof configure>[0]["loggers"] = [
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ];
    this.#files.forEach((f, i) => {
      sinks[`file${i}`] = f.sink;
      const category = i === 0 ? undefined : this.#categories[i - 1];
      loggers.push({
        category: category === undefined ? [] : [category],
        sinks: [`file${i}`],
        lowestLevel: name,
        ...(category === undefined ? {} : { parentSinks: "override" }),
      });
    });
    // The sinks are not disposable, so this reset writes nothing.
    await configure({ reset: true, sinks, loggers });
    this.#level = name;
  }

  /**
   * Writes every buffered line now (a long-running process may call this;
   * `flushIntervalMs` does it on a timer).
   *
   * @returns When written (or dropped after a failure); never rejects.
   */
  async flush(): Promise<void> {
    await Promise.all(this.#files.map((f) => f.flush()));
  }

  /** Stops logtape, then writes and closes every file. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#level !== undefined) await reset();
    this.#level = undefined;
    await Promise.all(this.#files.map((f) => f[Symbol.asyncDispose]()));
  }
}

/**
 * Sends every logger's records at `level` or above to a file, one line per
 * record, and the records of `categoryFiles` categories to their own files.
 * Dispose the result (`await using`) before exit: that writes the buffered
 * lines (one locked append per file, rotating the file first when it would
 * pass `maxBytes`) and resets logtape.
 *
 * Nothing is opened here. The first write creates the file 0640 and a
 * missing directory 0750 (whatever the umask). A path that is not a regular
 * file (a FIFO, a directory) is never opened: its lines are dropped.
 * Writing never throws.
 *
 * @param options The files, level, rotation and buffering.
 * @returns The logging handle.
 * @throws {RangeError} For an unknown level or a bad rotation option.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLogger } from "@logtape/logtape";
 * import { configureLogging } from "./logging.ts";
 * const dir = await Deno.makeTempDir();
 * {
 *   await using _log = await configureLogging({ file: `${dir}/p.log` });
 *   getLogger(["demo"]).info("ADD {id} ok", { id: "c1" });
 * }
 * assert.match(await Deno.readTextFile(`${dir}/p.log`), /ADD "c1" ok/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function configureLogging(
  options: LoggingOptions,
): Promise<Logging> {
  const level = parseLogLevel(options.level ?? "info");
  const { file, level: _, categoryFiles = {}, ...sinkOptions } = options;
  const categories = Object.keys(categoryFiles);
  const files = [file, ...Object.values(categoryFiles)].map((path) =>
    new LogFileSink(path, sinkOptions)
  );
  const logging = new Logging(files, categories);
  await logging.setLevel(level);
  return logging;
}

/**
 * The log directory: `AZURE_VNET_LOG_DIR` when set and not empty, else
 * `/var/log`, without trailing slashes.
 *
 * @param env The process environment.
 * @returns The directory.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { logDir } from "./logging.ts";
 * assert.equal(logDir({}), "/var/log");
 * assert.equal(logDir({ AZURE_VNET_LOG_DIR: "/tmp/x/" }), "/tmp/x");
 * ```
 */
export function logDir(
  env: Readonly<Record<string, string | undefined>>,
): string {
  return (env.AZURE_VNET_LOG_DIR || "/var/log").replace(/(?<=.)\/+$/, "");
}

/** Options of {@link startPluginLogging}. */
export interface PluginLoggingOptions {
  /** The process environment (`CNI_COMMAND`, `AZURE_VNET_LOG_DIR`). */
  env: Readonly<Record<string, string | undefined>>;
  /** The command-line arguments (`--version` skips the log). */
  args: readonly string[];
  /**
   * Categories logged to their own file in the same directory, by file
   * name, such as `{ "azure-vnet-ipam": "azure-vnet-ipam.log" }`.
   */
  categoryFiles?: Readonly<Record<string, string>>;
}

/**
 * The logging of one plugin process: `name` in {@link logDir} at `info`,
 * plus `categoryFiles`; no file at all when {@link wantsLogFile} says so.
 * Call `setLevel()` once the config is read; dispose before exit. Never
 * throws: logging must not fail a CNI command.
 *
 * @param name The log file name, such as `azure-vnet.log`.
 * @param options The environment, arguments and category files.
 * @returns The logging handle (without files when none is wanted).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { getLogger } from "@logtape/logtape";
 * import { startPluginLogging } from "./logging.ts";
 * const dir = await Deno.makeTempDir();
 * const env = { CNI_COMMAND: "DEL", AZURE_VNET_LOG_DIR: `${dir}/logs` };
 * {
 *   await using logs = await startPluginLogging("p.log", { env, args: [] });
 *   await logs.setLevel("warning");
 *   getLogger(["p"]).warn("DEL {id}", { id: "c1" });
 * }
 * assert.match(await Deno.readTextFile(`${dir}/logs/p.log`), /DEL "c1"/);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function startPluginLogging(
  name: string,
  options: PluginLoggingOptions,
): Promise<Logging> {
  if (!wantsLogFile(options.env, options.args)) return new Logging([], []);
  const dir = logDir(options.env);
  const categoryFiles: Record<string, string> = {};
  for (const [category, file] of Object.entries(options.categoryFiles ?? {})) {
    categoryFiles[category] = `${dir}/${file}`;
  }
  try {
    return await configureLogging({ file: `${dir}/${name}`, categoryFiles });
  } catch {
    return new Logging([], []);
  }
}
