/**
 * Sink setup for entry points: the only module that configures logtape.
 * Library code only calls `getLogger([...])`, which does nothing until an
 * entry point configures a sink here.
 *
 * @module
 */
import { configure, type LogLevel, reset, type Sink } from "@logtape/logtape";
import { getFileSink } from "@logtape/file";

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
export interface LoggingOptions {
  /** The log file, such as `/var/log/azure-vnet.log` (created 0640). */
  file: string;
  /** The lowest level written; default `info`. `warn` means `warning`. */
  level?: string;
  /**
   * Top-level categories whose records go to their own file instead of
   * `file`, such as `{ "azure-vnet-ipam": "/var/log/azure-vnet-ipam.log" }`
   * for an IPAM engine running in process (each created 0640, opened on its
   * first record).
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

/** File sink options: one flush (and fsync) per process, at disposal. */
const FILE_SINK = { bufferSize: 64 * 1024, flushInterval: 10_000 } as const;

/** Creates a log file with mode 0640 if it does not exist. */
async function createLogFile(path: string): Promise<void> {
  const f = await Deno.open(path, { append: true, create: true, mode: 0o640 });
  f.close();
}

/**
 * Sends every logger's records at `level` or above to a file, one line per
 * record. Dispose the result (`await using`) before exit: that flushes and
 * closes the file and resets logtape.
 *
 * The file is created with mode 0640 if missing (its directory must exist;
 * a caller overriding the path handles that).
 *
 * @param options The file and level.
 * @returns A handle whose disposal flushes and closes the sink.
 * @throws {RangeError} For an unknown level.
 * @throws {Deno.errors.NotFound} When the directory does not exist.
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
): Promise<AsyncDisposable> {
  const level = parseLogLevel(options.level ?? "info");
  await createLogFile(options.file);
  // Buffered: the Deno file driver fsyncs on every flush, and an unbuffered
  // sink flushes every record (about 1 ms per line on ext4). Disposal flushes
  // once before exit; a process killed with -9 may lose its last lines.
  const sinks: Record<string, Sink> = {
    file: getFileSink(options.file, FILE_SINK),
  };
  const loggers: Parameters<typeof configure>[0]["loggers"] = [
    { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    { category: [], sinks: ["file"], lowestLevel: level },
  ];
  for (const [category, file] of Object.entries(options.categoryFiles ?? {})) {
    await createLogFile(file);
    const name = `file:${category}`;
    sinks[name] = getFileSink(file, { ...FILE_SINK, lazy: true });
    loggers.push({
      category: [category],
      sinks: [name],
      parentSinks: "override",
      lowestLevel: level,
    });
  }
  await configure({ reset: true, sinks, loggers });
  return {
    async [Symbol.asyncDispose](): Promise<void> {
      await reset();
    },
  };
}
