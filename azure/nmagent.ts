/**
 * NMAgent `getinterfaceinfov1` through the wireserver: the XML document that
 * lists the VM's NICs, their subnets and IP configurations.
 *
 * @module
 */
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { azureMac } from "@vnet/address";
import { directFetch } from "./direct_fetch.ts";
import { fetchText, type RetryOptions } from "./retry.ts";
import type { HostInterface, HostIpAddress, HostIpSubnet } from "./types.ts";

/** The documented wireserver plugin URL. */
export const NMAGENT_URL =
  "http://168.63.129.16/machine/plugins?comp=nmagent&type=getinterfaceinfov1";

/** Options of {@linkcode getInterfaceInfo}. */
export interface GetInterfaceInfoOptions extends RetryOptions {
  /** Full URL of the document (default {@linkcode NMAGENT_URL}). */
  url?: string | undefined;
}

const TRUE_FORMS = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE_FORMS = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/**
 * Parses a boolean the way Go's `strconv.ParseBool` does; a missing
 * attribute is false.
 */
function parseGoBool(value: unknown, what: string): boolean {
  if (value === undefined) return false;
  const text = String(value).trim();
  if (TRUE_FORMS.has(text)) return true;
  if (FALSE_FORMS.has(text)) return false;
  throw new SyntaxError(`Cannot parse ${what} "${text}" as a boolean`);
}

function asList(value: unknown): Record<string, unknown>[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.map((item) =>
    typeof item === "object" && item !== null
      ? item as Record<string, unknown>
      : {}
  );
}

function attr(node: Record<string, unknown>, name: string): string {
  const value = node[`@${name}`];
  return value === undefined ? "" : String(value).trim();
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  parseTagValue: false,
  parseAttributeValue: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  isArray: (name) => ["Interface", "IPSubnet", "IPAddress"].includes(name),
});

/**
 * Parses a `getinterfaceinfov1` XML document.
 *
 * Rules (reference §1.4): the root must be `Interfaces`; unknown elements
 * and attributes are ignored; booleans follow Go's `ParseBool` and a missing
 * one is false; `MacAddress` is normalised to 12 lower-case hex digits,
 * except the test wildcard `"*"`, kept as is. An empty `<Interfaces/>` is a
 * valid empty list; anything unparsable throws, so a broken document never
 * reads as "no addresses".
 *
 * @param xml The document text.
 * @returns The NICs in document order.
 * @throws {SyntaxError} When the document is not well-formed, its root is
 *   not `Interfaces`, or a MAC or boolean does not parse.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseInterfaceInfo } from "./nmagent.ts";
 *
 * const nics = parseInterfaceInfo(
 *   `<Interfaces><Interface MacAddress="000D3AF9DCA6" IsPrimary="true">
 *     <IPSubnet Prefix="10.240.0.0/16">
 *       <IPAddress Address="10.240.0.4" IsPrimary="true"/>
 *       <IPAddress Address="10.240.0.5" IsPrimary="false"/>
 *     </IPSubnet></Interface></Interfaces>`,
 * );
 * assert.equal(nics[0]?.macAddress, "000d3af9dca6");
 * assert.equal(nics[0]?.subnets[0]?.addresses.length, 2);
 * ```
 */
export function parseInterfaceInfo(xml: string): HostInterface[] {
  const valid = XMLValidator.validate(xml);
  if (valid !== true) {
    throw new SyntaxError(
      `Cannot parse interface info XML: ${valid.err.msg} (line ${valid.err.line})`,
      { cause: valid.err },
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(xml) as Record<string, unknown>;
  } catch (cause) {
    throw new SyntaxError("Cannot parse interface info XML", { cause });
  }
  const roots = Object.keys(doc).filter((key) => !key.startsWith("?"));
  if (roots.length !== 1 || roots[0] !== "Interfaces") {
    throw new SyntaxError(
      `Cannot parse interface info XML: root is "${
        roots.join(",")
      }", expected "Interfaces"`,
    );
  }
  const root = doc.Interfaces;
  if (Array.isArray(root)) {
    throw new SyntaxError(
      "Cannot parse interface info XML: more than one root element",
    );
  }
  const rootNode = typeof root === "object" && root !== null
    ? root as Record<string, unknown>
    : {};
  return asList(rootNode.Interface).map((nic): HostInterface => {
    const rawMac = attr(nic, "MacAddress");
    const macAddress = azureMac(rawMac, { wildcard: true });
    const subnets = asList(nic.IPSubnet).map((subnet): HostIpSubnet => ({
      prefix: attr(subnet, "Prefix"),
      addresses: asList(subnet.IPAddress).map((ip): HostIpAddress => ({
        address: attr(ip, "Address"),
        isPrimary: parseGoBool(ip["@IsPrimary"], "IPAddress IsPrimary"),
      })),
    }));
    return {
      macAddress,
      isPrimary: parseGoBool(nic["@IsPrimary"], "Interface IsPrimary"),
      subnets,
    };
  });
}

/**
 * Fetches and parses the NMAgent interface document from the wireserver.
 *
 * Non-2xx answers are errors; 429, 5xx and timeouts are retried (bounded).
 * The request goes straight to the URL's host, never through a proxy
 * ({@linkcode directFetch}), unless a `fetch` is given.
 *
 * @param options URL, `fetch`, `timeoutMs` (5000), `retries` (2), `sleep`.
 * @returns The NICs the host reports.
 * @throws {AzureHttpError} On an HTTP error or network failure/timeout.
 * @throws {SyntaxError} When the body does not parse (see
 *   {@linkcode parseInterfaceInfo}).
 *
 * @example Usage
 * ```ts ignore
 * import { getInterfaceInfo } from "@vnet/azure";
 *
 * const nics = await getInterfaceInfo({ url: "http://127.0.0.1:8080/machine/plugins?comp=nmagent&type=getinterfaceinfov1" });
 * ```
 */
export async function getInterfaceInfo(
  options: GetInterfaceInfoOptions = {},
): Promise<HostInterface[]> {
  const { body } = await fetchText(options.url ?? NMAGENT_URL, {
    ...options,
    fetch: options.fetch ?? directFetch,
  });
  return parseInterfaceInfo(body);
}
