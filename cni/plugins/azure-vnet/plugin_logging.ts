/**
 * The entry point's log sink: started at `info` before the config is read,
 * switched to the config's `logLevel` once it is valid, flushed at exit. A
 * log file that cannot be opened never fails the CNI command.
 *
 * @module
 */
import { configureLogging } from "@vnet/cni";

/** The log file name. */
export const LOG_FILE_NAME = "azure-vnet.log";

/** The in-process IPAM engine's log file name (same as the binary's). */
export const IPAM_LOG_FILE_NAME = "azure-vnet-ipam.log";

/**
 * The log file path: `AZURE_VNET_LOG_DIR` (when set) or `/var/log`, plus
 * `azure-vnet.log`.
 *
 * @param env The process environment.
 * @returns The path.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { logFilePath } from "./plugin_logging.ts";
 * assert.equal(logFilePath({}), "/var/log/azure-vnet.log");
 * assert.equal(logFilePath({ AZURE_VNET_LOG_DIR: "/tmp/x" }), "/tmp/x/azure-vnet.log");
 * ```
 */
export function logFilePath(env: Readonly<Record<string, string>>): string {
  const dir = env.AZURE_VNET_LOG_DIR || "/var/log";
  return `${dir.replace(/\/+$/, "")}/${LOG_FILE_NAME}`;
}

/**
 * The plugin's logging for one process.
 *
 * @example Usage
 * ```ts ignore
 * await using logs = await PluginLogging.start("/var/log/azure-vnet.log");
 * await logs.setLevel("debug");
 * ```
 */
export class PluginLogging implements AsyncDisposable {
  #file: string;
  #level = "info";
  #handle: AsyncDisposable | undefined;

  private constructor(file: string) {
    this.#file = file;
  }

  /**
   * Starts logging to `file` at `info`.
   *
   * @param file The log file (its directory is created).
   * @returns The logging handle (without a sink if the file cannot open).
   */
  static async start(file: string): Promise<PluginLogging> {
    const logs = new PluginLogging(file);
    await logs.#configure("info");
    return logs;
  }

  async #configure(level: string): Promise<void> {
    try {
      const dir = this.#file.slice(0, this.#file.lastIndexOf("/")) || "/";
      await Deno.mkdir(dir, { recursive: true });
      // The IPAM engine running in process logs where the exec'd
      // azure-vnet-ipam would: both routes share one IPAM log.
      this.#handle = await configureLogging({
        file: this.#file,
        level,
        categoryFiles: { "azure-vnet-ipam": `${dir}/${IPAM_LOG_FILE_NAME}` },
      });
      this.#level = level;
    } catch {
      // Logging must never fail a CNI command: run without a sink.
      this.#handle = undefined;
    }
  }

  /**
   * Switches to `level` (no-op when unchanged).
   *
   * @param level `debug`, `info`, `warning` or `error`.
   */
  async setLevel(level: string): Promise<void> {
    if (level === this.#level) return;
    await this.#configure(level);
  }

  /** Flushes and closes the sink. */
  async [Symbol.asyncDispose](): Promise<void> {
    const h = this.#handle;
    this.#handle = undefined;
    await h?.[Symbol.asyncDispose]();
  }
}
