import assert from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { escapeControlChars, formatLogLine } from "./log_format.ts";

function record(message: unknown[]): LogRecord {
  return {
    category: ["azure-vnet", "cni"],
    level: "warning",
    message,
    rawMessage: "",
    timestamp: Date.UTC(2024, 4, 1, 12, 0, 0, 7),
    properties: {},
  };
}

Deno.test("escapeControlChars() escapes control characters when present", async (t) => {
  const cases: [string, string][] = [
    ["a\nb", "a\\nb"],
    ["a\r\n", "a\\r\\n"],
    ["\t", "\\t"],
    ["\0\x01\x1b[2J", "\\u0000\\u0001\\u001b[2J"],
    ["\x7f\x85\x9b", "\\u007f\\u0085\\u009b"],
    ["\u2028\u2029", "\\u2028\\u2029"],
    ["plain \\n é €", "plain \\n é €"],
  ];
  for (const [input, want] of cases) {
    await t.step(JSON.stringify(input), () => {
      assert.equal(escapeControlChars(input), want);
    });
  }
});

Deno.test("formatLogLine() keeps logtape's default line format when values are plain", () => {
  assert.equal(
    formatLogLine(record(["ADD ", "c1", " ok in ", 12, " ms"])),
    '2024-05-01 12:00:00.007 +00:00 [WRN] azure-vnet·cni: ADD "c1" ok in 12 ms\n',
  );
});

Deno.test("formatLogLine() renders one line when a value is long, multi-line or an Error", () => {
  const line = formatLogLine(
    record([
      "list ",
      Array.from({ length: 40 }, (_, i) => `item-${i}`),
      " err ",
      new Error("a\nb"),
      "",
    ]),
  );
  assert.ok(line.endsWith("\n"));
  assert.equal(line.indexOf("\n"), line.length - 1, line);
  assert.match(
    line,
    /\[ "item-0", "item-1", .* "item-39" \] err Error: a\\nb\\n/,
  );
});

Deno.test("formatLogLine() redacts URL secrets when a value or the template holds them", () => {
  const line = formatLogLine(
    record(["GET https://a:b@h/p?sig=x ", { url: "http://u:p@h/x?sig=s" }, ""]),
  );
  assert.match(line, /GET https:\/\/REDACTED@h\/p\?sig=REDACTED /);
  assert.match(line, /url: "http:\/\/REDACTED@h\/x\?sig=REDACTED"/);
});
