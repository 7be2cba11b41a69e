/**
 * The log line format: one record, one physical line, no secrets.
 *
 * A record renders as logtape's default text line
 * (`2024-05-01 12:00:00.000 +00:00 [INF] azure-vnet: "ADD" "c1" ok`), with
 * three differences that make the file safe to read line by line whatever
 * the logged values hold (a `CNI_NETNS` or a container id is attacker
 * controlled):
 *
 * - values are rendered by `Deno.inspect` on one line (no 80-column wrap of
 *   long arrays and objects);
 * - every control character left in the line (C0, DEL, C1, U+2028 and
 *   U+2029: a raw newline in a template or an error's stack, an ESC
 *   sequence) is escaped (`\n`, `\r`, `\t`, `\u001b`);
 * - URL credentials and query values are redacted ({@link redactSecrets}).
 *
 * Then a single `\n` ends the line.
 *
 * @module
 */
import type { LogRecord } from "@logtape/logtape";
import { getTextFormatter } from "@logtape/logtape";
import { redactSecrets } from "./redact.ts";

/** Control characters and the Unicode line and paragraph separators. */
const CONTROL = /[\p{Cc}\u2028\u2029]/gu;

/** Short escapes; everything else becomes `\uXXXX`. */
const SHORT: Readonly<Record<string, string>> = {
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
};

function escapeChar(c: string): string {
  return SHORT[c] ??
    `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * Escapes every control character (C0, DEL, C1) and U+2028/U+2029 in
 * `text`, so it prints on one line and carries no terminal escape
 * sequences. `\n`, `\r` and `\t` become those two-character escapes, any
 * other one `\uXXXX`. Other characters (backslash included) are unchanged.
 *
 * @param text Any text.
 * @returns The text without control characters.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeControlChars } from "./log_format.ts";
 * assert.equal(escapeControlChars("a\nb\x1b[31m"), "a\\nb\\u001b[31m");
 * assert.equal(escapeControlChars("plain"), "plain");
 * ```
 */
export function escapeControlChars(text: string): string {
  return text.replace(CONTROL, escapeChar);
}

/** Renders a logged value on one line, as logtape would (but unwrapped). */
function renderValue(value: unknown): string {
  return Deno.inspect(value, {
    strAbbreviateSize: Infinity,
    iterableLimit: Infinity,
    compact: true,
    breakLength: Infinity,
  });
}

/** Escapes and redacts the parts of a line logtape assembled. */
function renderLine(
  parts: { timestamp: string | null; level: string; category: string },
  message: string,
): string {
  const head = parts.timestamp === null ? "" : `${parts.timestamp} `;
  return redactSecrets(
    escapeControlChars(`${head}[${parts.level}] ${parts.category}: ${message}`),
  );
}

const TEXT = getTextFormatter({
  value: renderValue,
  format: (p) => renderLine(p, p.message),
});

/**
 * Formats one log record as exactly one line ending in `\n`: logtape's
 * default text format, values on one line, control characters escaped
 * ({@link escapeControlChars}), then URL secrets redacted.
 *
 * @param record A logtape record.
 * @returns The line, with its trailing newline.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatLogLine } from "./log_format.ts";
 * const line = formatLogLine({
 *   category: ["azure-vnet"],
 *   level: "info",
 *   message: ["ADD ", "c1\nFAKE [ERR]", " from ", "http://u:p@h/x?sig=s"],
 *   rawMessage: "ADD {id} from {url}",
 *   timestamp: 0,
 *   properties: {},
 * });
 * assert.equal(
 *   line,
 *   '1970-01-01 00:00:00.000 +00:00 [INF] azure-vnet: ADD "c1\\nFAKE [ERR]" from "http://REDACTED@h/x?sig=REDACTED"\n',
 * );
 * ```
 */
export function formatLogLine(record: LogRecord): string {
  return TEXT(record);
}
