/**
 * Test helpers for the IPAM unit tests: CmdArgs builder, NMAgent XML
 * builder and a loopback listener standing for the wireserver and IMDS.
 *
 * @module
 */
import type { CmdArgs, CniCommand, NetConf } from "@vnet/cni";
import { parseIpamConfig } from "./config.ts";
import type { IpamConfig } from "./config.ts";

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

/** The MAC of the NIC of {@link fakeSource}, as the IPAM state keeps it. */
export const SOURCE_MAC = "000d3af9dca6";

/** The parsed config of network "azure" with these `ipam` keys. */
export function ipamConfig(ipam: Record<string, unknown>): IpamConfig {
  return parseIpamConfig({
    cniVersion: "1.1.0",
    name: "azure",
    type: "azure-vnet",
    ipam: { type: "azure-vnet-ipam", ...ipam },
  });
}

/** A wireserver config on a loopback URL that nothing listens on. */
export function wireserverConfig(
  extra: Record<string, unknown> = {},
): IpamConfig {
  return ipamConfig({
    queryUrl: "http://127.0.0.1:1/machine/plugins?comp=nmagent",
    ...extra,
  });
}

/** What {@link fakeSource} reports and has served. */
export interface FakeSourceState {
  /** Requests served. */
  requests: number;
  /** Answer HTTP 500 while set. */
  fail: boolean;
  /** The NIC's secondary addresses in 10.240.0.0/16 (primary .4). */
  addresses: string[];
}

/**
 * A wireserver as an injected `fetch`: one NIC ({@link SOURCE_MAC}),
 * counting requests, answering with `source.addresses` (or HTTP 500 while
 * `source.fail` is set) after `delayMs`.
 */
export function fakeSource(
  addresses: string[],
  delayMs = 0,
): { source: FakeSourceState; fetch: () => Promise<Response> } {
  const source: FakeSourceState = { requests: 0, fail: false, addresses };
  const fetch = async (): Promise<Response> => {
    source.requests++;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    if (source.fail) return xmlResponse("<Error/>", 500);
    return xmlResponse(nmagentXml([{
      mac: "000D3AF9DCA6",
      subnets: [{
        prefix: "10.240.0.0/16",
        primary: "10.240.0.4",
        addresses: source.addresses,
      }],
    }]));
  };
  return { source, fetch };
}
