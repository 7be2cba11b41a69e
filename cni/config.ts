/**
 * Decoding and base validation of the network configuration a plugin gets
 * on stdin, with `zod/mini`.
 *
 * Codes: 5 when stdin cannot be read (skel), 6 when the bytes are not UTF-8
 * JSON, 7 when the JSON is not a valid config. Messages name the field and
 * what was wrong. Unknown keys are kept (plugins validate their own keys in
 * their own `config.ts`, extending {@link NetConfSchema}).
 *
 * @module
 */
import * as z from "zod/mini";
import { DnsSchema } from "./dns.ts";
import { CniError, CODES } from "./errors.ts";
import { type Attachment, DEFAULT_VERSION, type NetConf } from "./spec.ts";

/** Container ids and network names: alphanumeric, then `[A-Za-z0-9_.-]`. */
export const ID_PATTERN: RegExp = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

const AttachmentSchema = z.looseObject({
  containerID: z.string().check(z.minLength(1)),
  ifname: z.string().check(z.minLength(1)),
});

const ObjectSchema = z.record(z.string(), z.unknown());

/**
 * The base schema of a plugin's network configuration. Plugins extend it
 * (`z.extend(NetConfSchema, {...})`) for their own keys.
 */
export const NetConfSchema = z.looseObject({
  cniVersion: z.string(),
  name: z.string().check(
    z.regex(
      ID_PATTERN,
      "must start with a letter or digit, followed by letters, digits, _ . or -",
    ),
  ),
  type: z.string().check(z.minLength(1, "must not be empty")),
  ipam: z.optional(
    z.looseObject({
      type: z.string().check(z.minLength(1, "must not be empty")),
    }),
  ),
  dns: z.optional(DnsSchema),
  runtimeConfig: z.optional(ObjectSchema),
  args: z.optional(ObjectSchema),
  prevResult: z.optional(ObjectSchema),
  // null: libcni's GCNetworkList sends a nil Go slice so (no valid pod).
  "cni.dev/valid-attachments": z.optional(
    z.nullable(z.array(AttachmentSchema)),
  ),
  "cni.dev/attachments": z.optional(z.nullable(z.array(AttachmentSchema))),
});

function fieldName(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out === "" ? String(p) : `.${String(p)}`;
  }
  return out === "" ? "(root)" : out;
}

function describeType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return typeof v === "object" ? "an object" : `a ${typeof v}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = root;
  for (const p of path) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[p];
  }
  return cur;
}

/**
 * Turns zod issues into one message that names each field and what was
 * wrong: `field "name" is missing; field "ipam.type" must not be empty`.
 *
 * @param error The zod error.
 * @param input The value that was validated (to say what was found).
 * @returns The joined description.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import * as z from "zod/mini";
 * import { describeIssues } from "./config.ts";
 * const input = { a: 1 };
 * const r = z.object({ a: z.string() }).safeParse(input);
 * assert.ok(!r.success);
 * assert.equal(describeIssues(r.error, input), 'field "a" must be a string, found a number');
 * ```
 */
export function describeIssues(
  error: z.core.$ZodError,
  input: unknown,
): string {
  return error.issues.map((issue) => {
    const field = `field "${fieldName(issue.path)}"`;
    const found = valueAt(input, issue.path);
    if (issue.code === "invalid_type") {
      if (found === undefined) return `${field} is missing`;
      return `${field} must be ${
        issue.expected === "array"
          ? "a list"
          : issue.expected === "object"
          ? "an object"
          : `a ${issue.expected}`
      }, found ${describeType(found)}`;
    }
    if (issue.code === "invalid_format") {
      return `${field} ${JSON.stringify(found)} ${issue.message}`;
    }
    if (issue.code === "invalid_value" && found === undefined) {
      return `${field} is missing`;
    }
    if (issue.code === "invalid_value") {
      // zod/mini carries no locale: its own message is "Invalid input".
      return `${field} must be ${issue.values.length === 1 ? "" : "one of "}${
        issue.values.map((v) => JSON.stringify(v)).join(", ")
      }, found ${JSON.stringify(found) ?? describeType(found)}`;
    }
    if (issue.code === "invalid_union") {
      const types = unionTypes(issue.errors);
      if (types !== undefined) {
        return `${field} must be ${types.join(" or ")}, found ${
          describeType(found)
        }`;
      }
    }
    return `${field} ${issue.message}`;
  }).join("; ");
}

/** The types a union of plain types expects (`a string`, `a number`). */
function unionTypes(
  errors: readonly (readonly z.core.$ZodIssue[])[],
): string[] | undefined {
  const out: string[] = [];
  for (const branch of errors) {
    const issue = branch[0];
    if (
      branch.length !== 1 || issue === undefined ||
      issue.code !== "invalid_type" || issue.path.length > 0
    ) return undefined;
    out.push(`a ${issue.expected}`);
  }
  return out.length === 0 ? undefined : out;
}

/**
 * Decodes stdin bytes as a JSON object.
 *
 * @param stdin The raw bytes (or text).
 * @returns The decoded object.
 * @throws {CniError} Code 6 when the bytes are not UTF-8 JSON; code 7 when
 * the JSON is not an object.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeConfig } from "./config.ts";
 * assert.deepEqual(decodeConfig('{"a":1}'), { a: 1 });
 * assert.throws(() => decodeConfig("{"), { name: "CniError", code: 6 });
 * ```
 */
export function decodeConfig(
  stdin: Uint8Array | string,
): Record<string, unknown> {
  let value: unknown;
  try {
    const text = typeof stdin === "string"
      ? stdin
      : new TextDecoder("utf-8", { fatal: true }).decode(stdin);
    value = JSON.parse(text);
  } catch (err) {
    throw new CniError(
      CODES.decodeFailure,
      "Cannot decode network config: invalid JSON",
      { cause: err },
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid network config: expected a JSON object, found ${
        describeType(value)
      }`,
    );
  }
  return value as Record<string, unknown>;
}

/**
 * Decodes and validates a network config. A missing `cniVersion` becomes
 * {@link DEFAULT_VERSION} (0.2.0). The version itself is checked by
 * `negotiateVersion()` (code 1), not here.
 *
 * @param stdin The raw stdin bytes (or text).
 * @returns The config with every key kept.
 * @throws {CniError} Code 6 for undecodable JSON; code 7 naming each invalid
 * field.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNetConf } from "./config.ts";
 * const conf = parseNetConf('{"name":"azure","type":"azure-vnet","mode":"bridge"}');
 * assert.equal(conf.cniVersion, "0.2.0");
 * assert.equal(conf.mode, "bridge");
 * assert.throws(() => parseNetConf('{"type":"x"}'), {
 *   name: "CniError",
 *   code: 7,
 *   message: /field "name" is missing/,
 * });
 * ```
 */
export function parseNetConf(stdin: Uint8Array | string): NetConf {
  const raw = decodeConfig(stdin);
  const input = raw.cniVersion === undefined
    ? { ...raw, cniVersion: DEFAULT_VERSION }
    : raw;
  const r = NetConfSchema.safeParse(input);
  if (!r.success) {
    throw new CniError(
      CODES.invalidConfig,
      `Invalid network config: ${describeIssues(r.error, input)}`,
    );
  }
  return r.data as NetConf;
}

/** Options of {@link gcAttachments}. */
export interface GcAttachmentsOptions {
  /**
   * True to refuse a config without a list (code 7) instead of reading it as
   * "none is valid": a runtime that omits the list must not make GC wipe
   * every attachment of the node.
   */
  readonly required?: boolean;
}

/**
 * The GC list of valid attachments: `cni.dev/valid-attachments`, or the
 * older `cni.dev/attachments`. `null` is an empty list: libcni's
 * `GCNetworkList` sends a nil Go slice as `null` under both keys when no
 * attachment is valid. Absent means none is valid (the spec: GC removes
 * everything not listed; `cnitool gc` sends no list), unless `required` is
 * set.
 *
 * @param conf The parsed config.
 * @param options `required`: refuse a config without either key.
 * @returns The valid attachments (possibly empty).
 * @throws {CniError} Code 7 when `required` and the config has neither
 * key.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { gcAttachments } from "./config.ts";
 * const conf = {
 *   cniVersion: "1.1.0", name: "n", type: "t",
 *   "cni.dev/attachments": [{ containerID: "c1", ifname: "eth0" }],
 * };
 * assert.deepEqual(gcAttachments(conf), [{ containerID: "c1", ifname: "eth0" }]);
 * const bare = { cniVersion: "1.1.0", name: "n", type: "t" };
 * assert.throws(() => gcAttachments(bare, { required: true }), {
 *   name: "CniError",
 *   code: 7,
 * });
 * ```
 */
export function gcAttachments(
  conf: NetConf,
  options: GcAttachmentsOptions = {},
): Attachment[] {
  const valid = conf["cni.dev/valid-attachments"];
  const older = conf["cni.dev/attachments"];
  const list = valid ?? older;
  if (Array.isArray(list)) {
    return list.map((a) => ({ containerID: a.containerID, ifname: a.ifname }));
  }
  // libcni's nil slice: the runtime said that no attachment is valid.
  if (valid === null || older === null || options.required !== true) return [];
  throw new CniError(
    CODES.invalidConfig,
    "GC needs cni.dev/valid-attachments (a list of the attachments to keep); nothing was collected",
  );
}
