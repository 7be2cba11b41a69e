/**
 * Test helpers for the IPAM unit tests: CmdArgs builder, NMAgent XML
 * builder and a loopback listener standing for the wireserver and IMDS.
 *
 * @module
 */
import type { CmdArgs, CniCommand, NetConf } from "@vnet/cni";

/** Options of {@link makeArgs}. */
export interface MakeArgsOptions {
  containerId?: string;
  ifName?: string;
  env?: Record<string, string>;
  /** `CNI_ARGS` IP= values. */
  ips?: string[];
}

/** Builds the CmdArgs skel would pass for `conf`. */
export function makeArgs(
  command: CniCommand,
  conf: Record<string, unknown>,
  options: MakeArgsOptions = {},
): CmdArgs {
  const config = {
    cniVersion: "1.0.0",
    name: "azure",
    type: "azure-vnet-ipam",
    ...conf,
  } as NetConf;
  const stdin = new TextEncoder().encode(JSON.stringify(config));
  const ips = options.ips ?? [];
  return {
    command,
    containerId: options.containerId ??
      (command === "GC" || command === "STATUS" ? "" : "c1"),
    netns: "",
    ifName: options.ifName ??
      (command === "GC" || command === "STATUS" ? "" : "eth0"),
    args: {
      all: new Map(ips.map((ip) => ["IP", ip])),
      ignoreUnknown: false,
      ips,
    },
    rawArgs: ips.map((ip) => `IP=${ip}`).join(";"),
    path: [],
    stdin,
    config,
    env: options.env ?? {},
  };
}

/** One NIC for {@link nmagentXml}. */
export interface XmlNic {
  mac: string;
  primary?: boolean;
  subnets: { prefix: string; primary?: string; addresses: string[] }[];
}

/** Builds a getinterfaceinfov1 document. */
export function nmagentXml(nics: XmlNic[]): string {
  const parts = ['<?xml version="1.0" encoding="utf-8"?>', "<Interfaces>"];
  for (const nic of nics) {
    parts.push(
      `<Interface MacAddress="${nic.mac}" IsPrimary="${nic.primary ?? true}">`,
    );
    for (const s of nic.subnets) {
      parts.push(`<IPSubnet Prefix="${s.prefix}">`);
      if (s.primary !== undefined) {
        parts.push(`<IPAddress Address="${s.primary}" IsPrimary="true"/>`);
      }
      for (const a of s.addresses) {
        parts.push(`<IPAddress Address="${a}" IsPrimary="false"/>`);
      }
      parts.push("</IPSubnet>");
    }
    parts.push("</Interface>");
  }
  parts.push("</Interfaces>");
  return parts.join("\n");
}

/** A loopback HTTP listener with a replaceable handler and a hit count. */
export class FakeWireserver implements AsyncDisposable {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  /** Requests served. */
  hits = 0;
  /** Answers each request. */
  handler: (req: Request) => Response | Promise<Response>;
  #server: Deno.HttpServer<Deno.NetAddr>;

  /** Starts listening on 127.0.0.1 with an ephemeral port. */
  constructor(handler: (req: Request) => Response | Promise<Response>) {
    this.handler = handler;
    this.#server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      (req) => {
        this.hits++;
        return this.handler(req);
      },
    );
    this.url = `http://127.0.0.1:${this.#server.addr.port}`;
  }

  /** The NMAgent URL on this listener. */
  get queryUrl(): string {
    return `${this.url}/machine/plugins?comp=nmagent&type=getinterfaceinfov1`;
  }

  /** Stops the listener. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#server.shutdown();
  }
}

/** A response carrying XML. */
export function xmlResponse(body: string, status = 200): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/xml" },
  });
}
