/**
 * Secrets out of messages: URL credentials (`user:password@`) and URL query
 * values (`?sig=…`) never reach a CNI error object (which ends up in kubelet
 * events) or a log file. Everything that prints a configured URL, or text
 * that may quote one (a `fetch` error names its URL), passes it through here.
 *
 * @module
 */

/** What stands in for a removed secret. */
export const REDACTED = "REDACTED";

/** A URL with a scheme, up to the first character no URL contains. */
const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s"'<>`\\]*)/gi;

/**
 * Redacts one URL: its userinfo becomes `REDACTED@` and every query value
 * `REDACTED` (the query names stay, so the message still tells what was
 * asked). A string without a scheme is returned unchanged.
 *
 * @param url The URL as configured (need not be valid).
 * @returns The URL without secrets.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactUrl } from "./redact.ts";
 * assert.equal(
 *   redactUrl("http://u:p@10.0.0.1/x?comp=nmagent&sig=abc"),
 *   "http://REDACTED@10.0.0.1/x?comp=REDACTED&sig=REDACTED",
 * );
 * assert.equal(redactUrl("http://168.63.129.16/machine"), "http://168.63.129.16/machine");
 * ```
 */
export function redactUrl(url: string): string {
  return redactSecrets(url);
}

function redactRest(rest: string): string {
  // Authority ends at the first `/`, `?` or `#`; its userinfo at the last `@`.
  const end = rest.search(/[/?#]/);
  const authority = end < 0 ? rest : rest.slice(0, end);
  let tail = end < 0 ? "" : rest.slice(end);
  const at = authority.lastIndexOf("@");
  const host = at < 0 ? authority : `${REDACTED}@${authority.slice(at + 1)}`;
  const q = tail.indexOf("?");
  if (q >= 0) {
    const hash = tail.indexOf("#", q);
    const query = hash < 0 ? tail.slice(q + 1) : tail.slice(q + 1, hash);
    const fragment = hash < 0 ? "" : tail.slice(hash);
    const redacted = query.split("&").map((pair) => {
      const eq = pair.indexOf("=");
      return eq < 0 ? pair : `${pair.slice(0, eq)}=${REDACTED}`;
    }).join("&");
    tail = `${tail.slice(0, q)}?${redacted}${fragment}`;
  }
  return host + tail;
}

/**
 * Redacts every URL found in `text` as {@link redactUrl} does; the rest of
 * the text is unchanged.
 *
 * @param text A message, a details string or a log line.
 * @returns The text without URL secrets.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { redactSecrets } from "./redact.ts";
 * assert.equal(
 *   redactSecrets('fetch "https://a:b@h/p?sig=s" failed'),
 *   'fetch "https://REDACTED@h/p?sig=REDACTED" failed',
 * );
 * ```
 */
export function redactSecrets(text: string): string {
  if (!text.includes("://")) return text;
  return text.replace(
    URL_IN_TEXT,
    (_m, scheme: string, rest: string) => scheme + redactRest(rest),
  );
}
