/**
 * The one wrapper over `node:util` `parseArgs` that every tool uses.
 *
 * `strict: true` always: an unknown option, a missing option value or an
 * unexpected positional prints the usage to stderr and yields exit code 2.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

/** The options table, exactly as `node:util` `parseArgs` takes it. */
export type CliOptions = NonNullable<ParseArgsConfig["options"]>;

/** What a tool declares about its command line. */
export interface CliSpec<O extends CliOptions> {
  /** Usage text printed to stderr on a bad command line. */
  usage: string;
  /** The `parseArgs` options table. */
  options: O;
  /** Accept positional arguments (default false). */
  allowPositionals?: boolean;
}

/** Parsed values, typed from the options table. */
export type CliValues<O extends CliOptions> = ReturnType<
  typeof parseArgs<{ options: O; strict: true; allowPositionals: boolean }>
>["values"];

/** A command line that parsed. */
export interface CliParsed<O extends CliOptions> {
  /** Option values by long name. */
  values: CliValues<O>;
  /** Positional arguments, in order. */
  positionals: string[];
}

/** A command line that did not parse: the caller returns this exit code. */
export interface CliRejected {
  /** Always 2 (usage error). */
  exitCode: 2;
  /** The parser's message, already printed to stderr with the usage. */
  message: string;
}

/** Where the usage goes; stderr unless a test injects a sink. */
export interface ParseCliOptions {
  /** Receives the error line and the usage (default: stderr). */
  writeErr?: (text: string) => void;
}

function writeStderr(text: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(text));
}

/**
 * Parses a tool's command line with `node:util` `parseArgs` (strict).
 *
 * On an unknown option, a missing value or an unexpected positional, it
 * writes the parser's message and the usage to stderr and returns
 * `{ exitCode: 2 }` instead of throwing.
 *
 * @param argv The arguments (usually `Deno.args`).
 * @param spec The usage text, the options table and `allowPositionals`.
 * @param options `writeErr` to capture the usage in tests.
 * @returns The parsed values and positionals, or `{ exitCode: 2, message }`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCli } from "./_cli.ts";
 *
 * const spec = {
 *   usage: "usage: tool [--force] [--dir DIR]",
 *   options: {
 *     force: { type: "boolean" },
 *     dir: { type: "string", default: "/tmp" },
 *   },
 * } as const;
 * const ok = parseCli(["--force"], spec);
 * assert.ok(!("exitCode" in ok));
 * assert.equal(ok.values.force, true);
 * assert.equal(ok.values.dir, "/tmp");
 * const bad = parseCli(["--nope"], spec, { writeErr() {} });
 * assert.ok("exitCode" in bad && bad.exitCode === 2);
 * ```
 */
export function parseCli<O extends CliOptions>(
  argv: readonly string[],
  spec: CliSpec<O>,
  options: ParseCliOptions = {},
): CliParsed<O> | CliRejected {
  const writeErr = options.writeErr ?? writeStderr;
  try {
    const parsed = parseArgs({
      args: [...argv],
      options: spec.options,
      strict: true,
      allowPositionals: spec.allowPositionals ?? false,
    });
    return {
      values: parsed.values as CliValues<O>,
      positionals: parsed.positionals,
    };
  } catch (err) {
    if (!(err instanceof Error) || !isParseArgsError(err)) throw err;
    writeErr(`${err.message}\n${spec.usage.trimEnd()}\n`);
    return { exitCode: 2, message: err.message };
  }
}

function isParseArgsError(err: Error): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === "string" && code.startsWith("ERR_PARSE_ARGS_") ||
    code === "ERR_INVALID_ARG_VALUE";
}
