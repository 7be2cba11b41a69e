/**
 * The Azure emulator: wireserver (NMAgent `getinterfaceinfov1`), IMDS with
 * managed-identity tokens, and ARM network interfaces (HTTPS, bearer token,
 * `Azure-AsyncOperation` polling), over one shared {@linkcode EmulatorState}.
 *
 * It binds only to the hostnames its caller passes (default 127.0.0.1),
 * never to a wildcard address.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { armMac, contains, normalizeIp } from "@vnet/address";
import {
  addVm,
  type AddVmSpec,
  allocateAddress,
  assigned,
  emptyState,
  type EmulatorIpConfig,
  type EmulatorState,
  type EmulatorVm,
  type IpVersion,
  ipVersionOf,
  nicResourceId,
  prefixOf,
  usedAddresses,
  vmResourceId,
} from "./state.ts";

const logger = getLogger(["vnet", "emulator"]);

/** The endpoints faults can target. */
export type EmulatorEndpoint = "wireserver" | "imds" | "token" | "arm";

/** A fault for one endpoint; counters count down per request. */
export interface EmulatorFault {
  /** Delay before answering, in ms. */
  latencyMs?: number | undefined;
  /** Answer this many requests with `errorStatus`. */
  errorCount?: number | undefined;
  /** Status for injected errors (default 500). */
  errorStatus?: number | undefined;
  /** `Retry-After` seconds on injected errors. */
  retryAfterSeconds?: number | undefined;
  /** Answer this many requests with a 200 and a malformed body. */
  malformedCount?: number | undefined;
}

/** How ARM long-running PUTs behave. */
export interface ArmBehaviour {
  /** `"async"`: Azure-AsyncOperation header; `"body"`: provisioningState. */
  mode: "async" | "body";
  /** `Retry-After` seconds on the PUT and on polls; undefined = no header. */
  retryAfterSeconds?: number | undefined;
  /** Polls answered "InProgress" before the operation completes. */
  inProgressPolls: number;
}

/** Options of {@linkcode startEmulator}. */
export interface EmulatorOptions {
  /** Address to bind (default 127.0.0.1); wildcards are refused. */
  hostname?: string | undefined;
  /** More addresses for the HTTP listener (same port when fixed). */
  extraHostnames?: readonly string[] | undefined;
  /** HTTP port (wireserver, IMDS, admin); default 0 (ephemeral). */
  httpPort?: number | undefined;
  /** HTTPS port (ARM and everything else); default 0. Needs `tls`. */
  httpsPort?: number | undefined;
  /** Leaf certificate and key PEM; without it no HTTPS listener. */
  tls?: { cert: string; key: string } | undefined;
  /** Initial world (default: empty, or the state file's content). */
  state?: EmulatorState | undefined;
  /** JSON file holding the world, re-read per request, written atomically. */
  stateFile?: string | undefined;
  /** Initial faults per endpoint. */
  faults?: Partial<Record<EmulatorEndpoint, EmulatorFault>> | undefined;
  /** ARM long-running operation behaviour. */
  arm?: Partial<ArmBehaviour> | undefined;
}

/** A running emulator. */
export interface Emulator extends AsyncDisposable {
  /** `http://HOST:PORT` of the first HTTP listener. */
  readonly httpUrl: string;
  /** `https://HOST:PORT`, or "" without TLS. */
  readonly httpsUrl: string;
  /** The current world (re-read from the state file when there is one). */
  readonly state: EmulatorState;
  /** Mutates the world and persists it. */
  update<T>(fn: (state: EmulatorState) => T): T;
  /** Sets (or with undefined clears) a fault on an endpoint. */
  setFault(endpoint: EmulatorEndpoint, fault: EmulatorFault | undefined): void;
  /** Changes ARM operation behaviour. */
  setArm(arm: Partial<ArmBehaviour>): void;
  /** Stops every listener. Idempotent. */
  close(): Promise<void>;
}

const TOKEN_PREFIX = "emulator-token.";
const TOKEN_TTL_S = 86_399;
const NETWORK_API_VERSION_RE = /^\d{4}-\d{2}-\d{2}(-preview)?$/;

interface PendingOp {
  id: string;
  vmName: string;
  resourceGroupName: string;
  previous: EmulatorIpConfig[];
  pollsLeft: number;
  status: "InProgress" | "Succeeded" | "Failed";
  error?: { code: string; message: string };
}

function json(
  body: unknown,
  status = 200,
  headers: HeadersInit = {},
): Response {
  return Response.json(body, { status, headers });
}

function armError(status: number, code: string, message: string): Response {
  return json({ error: { code, message } }, status);
}

function issueToken(resource: string): { token: string; expiresOn: number } {
  const expiresOn = Math.floor(Date.now() / 1000) + TOKEN_TTL_S;
  const payload = btoa(
    JSON.stringify({ resource, exp: expiresOn, n: crypto.randomUUID() }),
  )
    .replace(/=+$/, "");
  return { token: `${TOKEN_PREFIX}${payload}`, expiresOn };
}

function tokenValid(header: string | null): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? "");
  const token = m?.[1];
  if (token === undefined || !token.startsWith(TOKEN_PREFIX)) return false;
  try {
    const doc = JSON.parse(atob(token.slice(TOKEN_PREFIX.length))) as {
      exp?: unknown;
    };
    return typeof doc.exp === "number" && doc.exp * 1000 > Date.now();
  } catch {
    return false;
  }
}

function hasDuplicateParams(url: URL): boolean {
  const keys = [...url.searchParams.keys()];
  return new Set(keys).size !== keys.length;
}

function imdsNetwork(vm: EmulatorVm): Record<string, unknown> {
  const nic = vm.nic;
  const [address, prefix] = nic.subnet.prefix.split("/");
  const addresses = (version: IpVersion) =>
    assigned(vm, version).map((c) => ({
      privateIpAddress: c.privateIPAddress,
      publicIpAddress: "",
    }));
  const v6 = addresses("IPv6");
  const v6Prefix = nic.subnet.ipv6Prefix;
  const [address6, prefix6] = (v6Prefix ?? "").split("/");
  return {
    interface: [{
      ipv4: { ipAddress: addresses("IPv4"), subnet: [{ address, prefix }] },
      ipv6: v6.length === 0 || v6Prefix === undefined
        ? { ipAddress: [] }
        : { ipAddress: v6, subnet: [{ address: address6, prefix: prefix6 }] },
      macAddress: nic.macAddress,
    }],
  };
}

function imdsInstance(vm: EmulatorVm): Record<string, unknown> {
  return {
    compute: {
      azEnvironment: "AzurePublicCloud",
      location: vm.location,
      name: vm.vmScaleSetName === ""
        ? vm.name
        : `${vm.vmScaleSetName}_${vm.name}`,
      osType: "Linux",
      provider: "Microsoft.Compute",
      resourceGroupName: vm.resourceGroupName,
      resourceId: vmResourceId(vm),
      subscriptionId: vm.subscriptionId,
      tags: "",
      vmId: "00000000-0000-4000-8000-" +
        [...vm.name].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 2 ** 47, 7)
          .toString(16).padStart(12, "0"),
      vmScaleSetName: vm.vmScaleSetName,
      vmSize: "Standard_D2s_v3",
      zone: "",
    },
    network: imdsNetwork(vm),
  };
}

function ipSubnetXml(
  prefix: string,
  ips: { address: string; primary: boolean }[],
): string[] {
  return [
    `    <IPSubnet Prefix="${prefix}">`,
    ...ips.map((ip) =>
      `      <IPAddress Address="${ip.address}" IsPrimary="${ip.primary}"/>`
    ),
    "    </IPSubnet>",
  ];
}

function interfaceXml(vm: EmulatorVm): string {
  const nic = vm.nic;
  const v4 = nic.ipConfigurations
    .filter((c) =>
      c.privateIPAddress !== undefined && ipVersionOf(c) === "IPv4"
    )
    .map((c) => ({ address: c.privateIPAddress ?? "", primary: c.primary }));
  const v6 = assigned(vm, "IPv6").map((c, i) => ({
    address: c.privateIPAddress,
    primary: i === 0,
  }));
  const v6Prefix = nic.subnet.ipv6Prefix;
  return [
    '<?xml version="1.0" encoding="utf-8"?>',
    "<Interfaces>",
    `  <Interface MacAddress="${nic.macAddress}" IsPrimary="true">`,
    ...ipSubnetXml(nic.subnet.prefix, v4),
    ...(v6.length === 0 || v6Prefix === undefined
      ? []
      : ipSubnetXml(v6Prefix, v6)),
    "  </Interface>",
    "</Interfaces>",
    "",
  ].join("\n");
}

function nicWire(vm: EmulatorVm): Record<string, unknown> {
  const nic = vm.nic;
  const id = nicResourceId(vm);
  return {
    name: nic.name,
    id,
    etag: nic.etag,
    location: vm.location,
    type: "Microsoft.Network/networkInterfaces",
    properties: {
      provisioningState: nic.provisioningState,
      ipConfigurations: nic.ipConfigurations.map((c) => ({
        name: c.name,
        id: `${id}/ipConfigurations/${c.name}`,
        etag: nic.etag,
        type: "Microsoft.Network/networkInterfaces/ipConfigurations",
        properties: {
          provisioningState: c.privateIPAddress === undefined
            ? "Updating"
            : "Succeeded",
          ...(c.privateIPAddress === undefined
            ? {}
            : { privateIPAddress: c.privateIPAddress }),
          privateIPAllocationMethod: c.allocation,
          subnet: { id: nic.subnet.id },
          primary: c.primary,
          privateIPAddressVersion: ipVersionOf(c),
        },
      })),
      dnsSettings: { dnsServers: [], appliedDnsServers: [] },
      macAddress: armMac(nic.macAddress),
      enableAcceleratedNetworking: false,
      enableIPForwarding: false,
      primary: true,
      virtualMachine: { id: vmResourceId(vm) },
      nicType: "Standard",
    },
  };
}

/**
 * One ipconfig of a PUT body as the NIC will hold it (the address still
 * pending for a new Dynamic one), or ARM's 400 for it.
 */
function ipConfigOf(
  vm: EmulatorVm,
  name: string,
  props: Record<string, unknown>,
): EmulatorIpConfig | Response {
  const versionText = props.privateIPAddressVersion ?? "IPv4";
  if (versionText !== "IPv4" && versionText !== "IPv6") {
    return armError(
      400,
      "InvalidRequestContent",
      `privateIPAddressVersion of ${name} must be IPv4 or IPv6`,
    );
  }
  const version: IpVersion = versionText;
  const prefix = prefixOf(vm.nic.subnet, version);
  if (prefix === undefined) {
    return armError(
      400,
      "SubnetHasNoIPv6AddressPrefix",
      `ipConfiguration ${name} is IPv6, but subnet ${vm.nic.subnet.id} has no IPv6 address prefix`,
    );
  }
  const allocation = props.privateIPAllocationMethod === "Static"
    ? "Static"
    : "Dynamic";
  const old = vm.nic.ipConfigurations.find((c) =>
    c.name.toLowerCase() === name.toLowerCase() && ipVersionOf(c) === version
  );
  let address: string | undefined;
  if (allocation === "Static") {
    address = addressIn(prefix, props.privateIPAddress);
    if (address === undefined) {
      return armError(
        400,
        "PrivateIPAddressNotInSubnet",
        `Static address of ${name} is not in the subnet`,
      );
    }
  } else {
    address = old?.privateIPAddress;
  }
  const config: EmulatorIpConfig = {
    name,
    privateIPAddress: address,
    primary: props.primary === true,
    allocation,
  };
  return version === "IPv4"
    ? config
    : { ...config, privateIPAddressVersion: "IPv6" };
}

/** The canonical text of `text` when it is an address inside `prefix`. */
function addressIn(prefix: string, text: unknown): string | undefined {
  if (typeof text !== "string") return undefined;
  try {
    return contains(prefix, text) ? normalizeIp(text) : undefined;
  } catch {
    return undefined;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkBindable(hostname: string): void {
  if (["0.0.0.0", "::", "[::]", ""].includes(hostname)) {
    throw new RangeError(
      `Cannot bind emulator to "${hostname}": pass loopback or a sandbox address`,
    );
  }
}

class EmulatorImpl implements Emulator {
  httpUrl = "";
  httpsUrl = "";
  #state: EmulatorState;
  #stateFile: string | undefined;
  #faults = new Map<EmulatorEndpoint, EmulatorFault>();
  #arm: ArmBehaviour = { mode: "async", inProgressPolls: 0 };
  #ops = new Map<string, PendingOp>();
  #servers: Deno.HttpServer[] = [];
  #closed = false;

  constructor(options: EmulatorOptions) {
    this.#stateFile = options.stateFile;
    this.#state = options.state ?? emptyState();
    for (const [k, v] of Object.entries(options.faults ?? {})) {
      this.#faults.set(k as EmulatorEndpoint, v);
    }
    this.setArm(options.arm ?? {});
  }

  get state(): EmulatorState {
    return this.#load();
  }

  update<T>(fn: (state: EmulatorState) => T): T {
    const state = this.#load();
    const out = fn(state);
    this.#save();
    return out;
  }

  setFault(endpoint: EmulatorEndpoint, fault: EmulatorFault | undefined): void {
    if (fault === undefined) this.#faults.delete(endpoint);
    else this.#faults.set(endpoint, { ...fault });
  }

  setArm(arm: Partial<ArmBehaviour>): void {
    this.#arm = {
      mode: arm.mode ?? this.#arm.mode,
      inProgressPolls: arm.inProgressPolls ?? this.#arm.inProgressPolls,
      retryAfterSeconds: "retryAfterSeconds" in arm
        ? arm.retryAfterSeconds
        : this.#arm.retryAfterSeconds,
    };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#servers.map((s) => s.shutdown()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Binds the listeners; called once by startEmulator. */
  listen(options: EmulatorOptions): void {
    const hostnames = [
      options.hostname ?? "127.0.0.1",
      ...(options.extraHostnames ?? []),
    ];
    hostnames.forEach(checkBindable);
    if (this.#stateFile !== undefined) {
      if (options.state !== undefined) this.#save();
      else this.#load();
    }
    const handler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
      this.#handle(req, info);
    for (const hostname of hostnames) {
      const server = Deno.serve({
        hostname,
        port: options.httpPort ?? 0,
        onListen() {},
      }, handler);
      this.#servers.push(server);
      if (this.httpUrl === "") this.httpUrl = urlOf("http", server.addr);
    }
    if (options.tls !== undefined) {
      const first = hostnames[0] ?? "127.0.0.1";
      const server = Deno.serve({
        hostname: first,
        port: options.httpsPort ?? 0,
        cert: options.tls.cert,
        key: options.tls.key,
        onListen() {},
      }, handler);
      this.#servers.push(server);
      this.httpsUrl = urlOf("https", server.addr);
    }
  }

  #load(): EmulatorState {
    if (this.#stateFile === undefined) return this.#state;
    try {
      const doc = JSON.parse(Deno.readTextFileSync(this.#stateFile)) as unknown;
      if (!isRecord(doc) || doc.version !== 1 || !Array.isArray(doc.vms)) {
        throw new SyntaxError(
          `Cannot load emulator state "${this.#stateFile}": unexpected shape`,
        );
      }
      this.#state = doc as unknown as EmulatorState;
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      this.#save();
    }
    return this.#state;
  }

  #mutate(fn: (state: EmulatorState) => void): void {
    fn(this.#state);
    this.#save();
  }

  #save(): void {
    if (this.#stateFile === undefined) return;
    const tmp = `${this.#stateFile}.tmp-${Deno.pid}`;
    Deno.writeTextFileSync(tmp, JSON.stringify(this.#state, null, 2) + "\n");
    Deno.renameSync(tmp, this.#stateFile);
  }

  async #handle(
    req: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> {
    const url = new URL(req.url);
    const endpoint = endpointOf(url.pathname);
    try {
      this.#load();
      if (endpoint !== undefined) {
        const injected = await this.#applyFault(endpoint);
        if (injected !== undefined) return injected;
      }
      return this.#route(req, url, info.remoteAddr.hostname);
    } catch (err) {
      logger.error("Emulator failed on {path}: {err}", {
        path: url.pathname,
        err: String(err),
      });
      return armError(500, "InternalServerError", String(err));
    }
  }

  async #applyFault(endpoint: EmulatorEndpoint): Promise<Response | undefined> {
    const fault = this.#faults.get(endpoint);
    if (fault === undefined) return undefined;
    if ((fault.latencyMs ?? 0) > 0) {
      await new Promise((r) => setTimeout(r, fault.latencyMs));
    }
    if ((fault.errorCount ?? 0) > 0) {
      fault.errorCount = (fault.errorCount ?? 0) - 1;
      const status = fault.errorStatus ?? 500;
      const headers = new Headers();
      if (fault.retryAfterSeconds !== undefined) {
        headers.set("retry-after", String(fault.retryAfterSeconds));
      }
      if (endpoint === "wireserver") {
        headers.set("content-type", "text/xml");
        return new Response(
          "<Error><Code>InternalError</Code><Message>injected</Message><Details></Details></Error>",
          { status, headers },
        );
      }
      return json(
        { error: { code: "InjectedFault", message: "injected" } },
        status,
        headers,
      );
    }
    if ((fault.malformedCount ?? 0) > 0) {
      fault.malformedCount = (fault.malformedCount ?? 0) - 1;
      return new Response(
        endpoint === "wireserver" ? "<Interfaces><Interface" : '{"truncated":',
        { status: 200 },
      );
    }
    return undefined;
  }

  #route(req: Request, url: URL, remote: string): Promise<Response> | Response {
    const path = url.pathname;
    if (path.startsWith("/_emulator/")) return this.#admin(req, path);
    if (path === "/machine/plugins" || path === "/machine/plugins/") {
      return this.#wireserver(req, url, remote);
    }
    if (path === "/msi/token") return this.#msiToken(req, url);
    if (path.startsWith("/metadata/")) return this.#imds(req, url, remote);
    if (path.startsWith("/subscriptions/")) return this.#armRoute(req, url);
    return json({ error: "not_found" }, 404);
  }

  #pickVm(req: Request, url: URL, remote: string): EmulatorVm | undefined {
    const vms = this.#state.vms;
    const byIp = vms.find((vm) =>
      vm.nic.ipConfigurations.some((c) => c.privateIPAddress === remote)
    );
    if (byIp !== undefined) return byIp;
    const named = req.headers.get("x-emulator-vm") ??
      url.searchParams.get("vm");
    if (named !== null) return vms.find((vm) => vm.name === named);
    return vms[0];
  }

  #wireserver(req: Request, url: URL, remote: string): Response {
    if (req.method !== "GET") return new Response("", { status: 405 });
    if (
      url.searchParams.get("comp") !== "nmagent" ||
      url.searchParams.get("type") !== "getinterfaceinfov1"
    ) {
      return new Response(
        "<Error><Code>BadRequest</Code><Message>unsupported plugin query</Message></Error>",
        { status: 400, headers: { "content-type": "text/xml" } },
      );
    }
    const vm = this.#pickVm(req, url, remote);
    const body = vm === undefined
      ? '<?xml version="1.0" encoding="utf-8"?>\n<Interfaces/>\n'
      : interfaceXml(vm);
    return new Response(body, { headers: { "content-type": "text/xml" } });
  }

  #imds(req: Request, url: URL, remote: string): Response {
    if (req.method !== "GET") {
      return json({ error: "Method not allowed" }, 405, { allow: "GET" });
    }
    if (req.headers.get("metadata")?.toLowerCase() !== "true") {
      return json({
        error: "invalid_request",
        error_description: "Required metadata header not specified",
      }, 400);
    }
    if (req.headers.has("x-forwarded-for")) {
      return json({
        error: "invalid_request",
        error_description: "Request must not carry X-Forwarded-For",
      }, 400);
    }
    if (hasDuplicateParams(url)) {
      return json({ error: "Bad request. Duplicate query parameters" }, 400);
    }
    const path = url.pathname.replace(/\/+$/, "");
    if (path === "/metadata/versions") {
      return json({ apiVersions: ["2019-03-11", "2021-01-01", "2021-02-01"] });
    }
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null || !/^\d{4}-\d{2}-\d{2}$/.test(apiVersion)) {
      return json({
        error: "Bad request. api-version was not specified in the request",
        "newest-versions": ["2021-02-01", "2021-01-01", "2020-12-01"],
      }, 400);
    }
    if (path === "/metadata/identity/oauth2/token") {
      const resource = url.searchParams.get("resource");
      if (resource === null || resource === "") {
        return json({
          error: "invalid_resource",
          error_description: "Resource not specified",
        }, 400);
      }
      return json(tokenBody(resource));
    }
    if (
      path !== "/metadata/instance" && !path.startsWith("/metadata/instance/")
    ) {
      return json({ error: "Not found" }, 404);
    }
    const vm = this.#pickVm(req, url, remote);
    if (vm === undefined) return json({ error: "No VM in emulator" }, 404);
    let node: unknown = imdsInstance(vm);
    const segments = path.split("/").slice(3).filter((s) => s !== "");
    for (const seg of segments) {
      if (Array.isArray(node) && /^\d+$/.test(seg)) node = node[Number(seg)];
      else if (isRecord(node)) node = node[seg];
      else node = undefined;
      if (node === undefined) return json({ error: "Not found" }, 404);
    }
    const format = url.searchParams.get("format") ?? "json";
    if (format === "text") {
      if (typeof node === "string") return new Response(node);
      const keys = Array.isArray(node)
        ? node.map((_, i) => `${i}/`)
        : Object.entries(node as Record<string, unknown>).map(([k, v]) =>
          typeof v === "string" ? k : `${k}/`
        );
      return new Response(keys.join("\n"));
    }
    if (format !== "json") {
      return json({ error: "Bad request. Unsupported format" }, 400);
    }
    if (typeof node === "string") {
      return json({ error: "Bad request. Leaf nodes need format=text" }, 400);
    }
    return json(node);
  }

  #msiToken(req: Request, url: URL): Response {
    if (req.method !== "GET") return json({ error: "Method not allowed" }, 405);
    if (!req.headers.get("x-identity-header")) {
      return json({
        error: "invalid_request",
        error_description: "X-IDENTITY-HEADER missing",
      }, 400);
    }
    const resource = url.searchParams.get("resource");
    if (resource === null || resource === "") {
      return json({ error: "invalid_resource" }, 400);
    }
    return json(tokenBody(resource));
  }

  async #admin(req: Request, path: string): Promise<Response> {
    if (path === "/_emulator/state" && req.method === "GET") {
      return json(this.#load());
    }
    if (path === "/_emulator/state" && req.method === "PUT") {
      const doc = await req.json() as EmulatorState;
      if (doc.version !== 1 || !Array.isArray(doc.vms)) {
        return json({ error: "state must be {version: 1, vms: []}" }, 400);
      }
      this.#state = doc;
      this.#save();
      return json(doc);
    }
    if (path === "/_emulator/vms" && req.method === "POST") {
      const spec = await req.json() as AddVmSpec;
      try {
        return json(this.update((s) => addVm(s, spec)), 201);
      } catch (err) {
        return json({ error: String(err) }, 409);
      }
    }
    if (path === "/_emulator/faults" && req.method === "POST") {
      const body = await req.json() as
        & { endpoint: EmulatorEndpoint }
        & EmulatorFault;
      const { endpoint, ...fault } = body;
      this.setFault(endpoint, fault);
      return json({ ok: true });
    }
    if (path === "/_emulator/faults" && req.method === "DELETE") {
      this.#faults.clear();
      return json({ ok: true });
    }
    if (path === "/_emulator/arm" && req.method === "POST") {
      this.setArm(await req.json() as Partial<ArmBehaviour>);
      return json(this.#arm);
    }
    return json({ error: "not_found" }, 404);
  }

  #findNic(sub: string, rg: string, name: string): EmulatorVm | undefined {
    return this.#state.vms.find((vm) =>
      vm.vmScaleSetName === "" &&
      vm.subscriptionId.toLowerCase() === sub.toLowerCase() &&
      vm.resourceGroupName.toLowerCase() === rg.toLowerCase() &&
      vm.nic.name.toLowerCase() === name.toLowerCase()
    );
  }

  #armRoute(req: Request, url: URL): Promise<Response> | Response {
    if (!tokenValid(req.headers.get("authorization"))) {
      return armError(
        401,
        "AuthenticationFailed",
        "Bearer token missing or invalid",
      );
    }
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null || !NETWORK_API_VERSION_RE.test(apiVersion)) {
      return armError(
        400,
        "MissingApiVersionParameter",
        "api-version is required",
      );
    }
    const path = url.pathname;
    const op =
      /^\/subscriptions\/[^/]+\/providers\/Microsoft\.Network\/locations\/[^/]+\/operations\/([^/]+)$/i
        .exec(path);
    if (op?.[1] !== undefined) return this.#pollOp(op[1]);
    const list =
      /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/networkInterfaces\/?$/i
        .exec(path);
    if (
      list?.[1] !== undefined && list[2] !== undefined && req.method === "GET"
    ) {
      const [sub, rg] = [list[1], list[2]];
      const value = this.#state.vms.filter((vm) =>
        vm.vmScaleSetName === "" &&
        vm.subscriptionId.toLowerCase() === sub.toLowerCase() &&
        vm.resourceGroupName.toLowerCase() === rg.toLowerCase()
      ).map(nicWire);
      return json({ value });
    }
    const one =
      /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/networkInterfaces\/([^/]+)$/i
        .exec(path);
    if (
      one?.[1] === undefined || one[2] === undefined || one[3] === undefined
    ) {
      return armError(404, "InvalidResourceType", `No route for ${path}`);
    }
    const vm = this.#findNic(one[1], one[2], one[3]);
    if (vm === undefined) {
      return armError(404, "NotFound", `Resource ${path} not found`);
    }
    if (req.method === "GET") {
      this.#advanceBodyMode(vm);
      return json(nicWire(this.#findNic(one[1], one[2], one[3]) ?? vm));
    }
    if (req.method === "PUT") return this.#put(req, url, vm);
    return armError(405, "MethodNotAllowed", `${req.method} not supported`);
  }

  async #put(req: Request, url: URL, vm: EmulatorVm): Promise<Response> {
    const ifMatch = req.headers.get("if-match");
    if (ifMatch !== null && ifMatch !== "*" && ifMatch !== vm.nic.etag) {
      return armError(412, "PreconditionFailed", "etag does not match");
    }
    let body: unknown;
    try {
      body = await req.json();
    } catch {
      return armError(400, "InvalidRequestContent", "Body is not JSON");
    }
    if (!isRecord(body) || !isRecord(body.properties)) {
      return armError(400, "InvalidRequestContent", "properties missing");
    }
    if (typeof body.location !== "string" || body.location === "") {
      return armError(400, "LocationRequired", "location is required");
    }
    const raw = body.properties.ipConfigurations;
    if (!Array.isArray(raw) || raw.length === 0) {
      return armError(
        400,
        "InvalidRequestContent",
        "ipConfigurations required",
      );
    }
    if (raw.length > 256) {
      return armError(
        400,
        "MaxIpConfigurationsPerNicReached",
        `Network interface ${vm.nic.name} has ${raw.length} IP configurations; the maximum is 256`,
      );
    }
    const next: EmulatorIpConfig[] = [];
    const names = new Set<string>();
    for (const item of raw) {
      if (!isRecord(item) || typeof item.name !== "string") {
        return armError(
          400,
          "InvalidRequestContent",
          "ipConfiguration needs a name",
        );
      }
      const itemName = item.name;
      const props = isRecord(item.properties) ? item.properties : {};
      if (names.has(item.name.toLowerCase())) {
        return armError(
          400,
          "DuplicateResourceName",
          `Duplicate ipConfiguration ${item.name}`,
        );
      }
      names.add(item.name.toLowerCase());
      const subnetId = isRecord(props.subnet) ? props.subnet.id : undefined;
      if (
        typeof subnetId !== "string" ||
        subnetId.toLowerCase() !== vm.nic.subnet.id.toLowerCase()
      ) {
        return armError(
          400,
          "InvalidSubnet",
          `ipConfiguration ${item.name} must use subnet ${vm.nic.subnet.id}`,
        );
      }
      const config = ipConfigOf(vm, itemName, props);
      if (config instanceof Response) return config;
      next.push(config);
    }
    if (next.filter((c) => c.primary).length !== 1) {
      return armError(
        400,
        "NicMustHaveOnePrimaryIpConfiguration",
        "Exactly one ipConfiguration must be primary",
      );
    }
    const primary6 = next.find((c) => c.primary && ipVersionOf(c) === "IPv6");
    if (primary6 !== undefined) {
      return armError(
        400,
        "PrimaryIpConfigurationMustBeIPv4",
        `ipConfiguration ${primary6.name} is IPv6; the primary ipConfiguration of a network interface must be IPv4`,
      );
    }
    const own = new Set(vm.nic.ipConfigurations.map((c) => c.privateIPAddress));
    const others = usedAddresses(this.#state, vm.nic.subnet.id);
    for (const c of next) {
      if (
        c.allocation === "Static" && c.privateIPAddress !== undefined &&
        others.has(c.privateIPAddress) && !own.has(c.privateIPAddress)
      ) {
        return armError(
          400,
          "PrivateIPAddressInUse",
          `Address ${c.privateIPAddress} is in use`,
        );
      }
    }
    const id = crypto.randomUUID();
    const previous = vm.nic.ipConfigurations;
    this.#mutate(() => {
      vm.nic.ipConfigurations = next;
      vm.nic.provisioningState = "Updating";
      // As ARM: the etag changes when the PUT is accepted (and again when
      // its operation ends), so a writer that read before it is refused.
      vm.nic.etag = `W/"${crypto.randomUUID()}"`;
    });
    this.#ops.set(id, {
      id,
      vmName: vm.name,
      resourceGroupName: vm.resourceGroupName,
      previous,
      pollsLeft: this.#arm.inProgressPolls,
      status: "InProgress",
    });
    const headers = new Headers();
    if (this.#arm.mode === "async") {
      const apiVersion = url.searchParams.get("api-version") ?? "";
      headers.set(
        "azure-asyncoperation",
        `${url.origin}/subscriptions/${vm.subscriptionId}/providers/Microsoft.Network/locations/${vm.location}/operations/${id}?api-version=${apiVersion}`,
      );
    }
    if (this.#arm.retryAfterSeconds !== undefined) {
      headers.set("retry-after", String(this.#arm.retryAfterSeconds));
    }
    logger.info("PUT {nic}: {count} ipconfigs, operation {id}", {
      nic: vm.nic.name,
      count: next.length,
      id,
    });
    return json(nicWire(vm), 200, headers);
  }

  #vmOf(op: PendingOp): EmulatorVm | undefined {
    return this.#state.vms.find((vm) =>
      vm.name === op.vmName && vm.resourceGroupName === op.resourceGroupName
    );
  }

  #advance(op: PendingOp): void {
    if (op.status !== "InProgress") return;
    if (op.pollsLeft > 0) {
      op.pollsLeft--;
      return;
    }
    const vm = this.#vmOf(op);
    if (vm === undefined) {
      op.status = "Failed";
      op.error = { code: "NotFound", message: "NIC vanished" };
      return;
    }
    this.#mutate((state) => {
      const used = usedAddresses(state, vm.nic.subnet.id);
      for (const c of vm.nic.ipConfigurations) {
        if (c.privateIPAddress !== undefined) continue;
        const prefix = prefixOf(vm.nic.subnet, ipVersionOf(c)) ?? "";
        const ip = allocateAddress(prefix, used);
        if (ip === undefined) {
          op.status = "Failed";
          op.error = {
            code: "SubnetIsFull",
            message:
              `Subnet ${vm.nic.subnet.id} with address prefix ${prefix} does not have enough capacity`,
          };
          vm.nic.ipConfigurations = op.previous;
          vm.nic.provisioningState = "Failed";
          return;
        }
        c.privateIPAddress = ip;
      }
      op.status = "Succeeded";
      vm.nic.provisioningState = "Succeeded";
      vm.nic.etag = `W/"${crypto.randomUUID()}"`;
    });
  }

  #advanceBodyMode(vm: EmulatorVm): void {
    for (const op of this.#ops.values()) {
      if (
        op.vmName === vm.name && op.resourceGroupName === vm.resourceGroupName
      ) {
        this.#advance(op);
        if (op.status !== "InProgress") this.#ops.delete(op.id);
      }
    }
  }

  #pollOp(id: string): Response {
    const op = this.#ops.get(id);
    if (op === undefined) {
      return armError(404, "OperationNotFound", `Operation ${id} not found`);
    }
    this.#advance(op);
    const headers = new Headers();
    if (
      op.status === "InProgress" && this.#arm.retryAfterSeconds !== undefined
    ) {
      headers.set("retry-after", String(this.#arm.retryAfterSeconds));
    }
    const body: Record<string, unknown> = { status: op.status };
    if (op.error !== undefined) body.error = op.error;
    return json(body, 200, headers);
  }
}

function tokenBody(resource: string): Record<string, string> {
  const { token, expiresOn } = issueToken(resource);
  const now = Math.floor(Date.now() / 1000);
  return {
    access_token: token,
    client_id: "0f1e2d3c-0000-1111-2222-333344445555",
    expires_in: String(TOKEN_TTL_S),
    expires_on: String(expiresOn),
    ext_expires_in: String(TOKEN_TTL_S),
    not_before: String(now),
    resource,
    token_type: "Bearer",
  };
}

function endpointOf(path: string): EmulatorEndpoint | undefined {
  if (path.startsWith("/machine/")) return "wireserver";
  if (path.startsWith("/metadata/identity/") || path === "/msi/token") {
    return "token";
  }
  if (path.startsWith("/metadata/")) return "imds";
  if (path.startsWith("/subscriptions/")) return "arm";
  return undefined;
}

function urlOf(scheme: string, addr: Deno.NetAddr): string {
  const host = addr.hostname.includes(":")
    ? `[${addr.hostname}]`
    : addr.hostname;
  return `${scheme}://${host}:${addr.port}`;
}

/**
 * Starts the emulator: an HTTP listener per hostname (wireserver, IMDS,
 * tokens, admin API under `/_emulator/`) and, with `tls`, an HTTPS listener
 * on the first hostname serving the same routes, ARM included.
 *
 * The VM a request sees is the one whose NIC owns the caller's address,
 * else the one named by the `x-emulator-vm` header or `?vm=`, else the first.
 *
 * @param options Hostname(s), ports, TLS, initial state or state file,
 *   faults and ARM behaviour.
 * @returns The running emulator; `close()` it (or `await using`).
 * @throws {RangeError} When asked to bind a wildcard address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { startEmulator } from "./emulator.ts";
 * import { addVm, emptyState } from "./state.ts";
 *
 * const state = emptyState();
 * addVm(state, { name: "vm0", ipConfigCount: 2 });
 * await using emu = await startEmulator({ state });
 * const res = await fetch(`${emu.httpUrl}/machine/plugins?comp=nmagent&type=getinterfaceinfov1`);
 * assert.match(await res.text(), /10\.240\.0\.5/);
 * ```
 */
export function startEmulator(
  options: EmulatorOptions = {},
): Promise<Emulator> {
  try {
    const emu = new EmulatorImpl(options);
    emu.listen(options);
    return Promise.resolve(emu);
  } catch (err) {
    return Promise.reject(err);
  }
}
