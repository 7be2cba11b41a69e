/**
 * The agent's HTTP listener (#16): `GET /metrics` (Prometheus text),
 * `GET /v1/endpoints` and `GET /v1/pool` (JSON). Read-only: every other
 * method is 405, every other path 404.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { ListenAddress } from "./config.ts";

const log = getLogger(["azure-vnet-agent", "http"]);

/** What the listener serves; each is called per request. */
export interface StatusRoutes {
  /** The exposition text and its content type. */
  metrics(): Promise<{ text: string; contentType: string }>;
  /** The `/v1/endpoints` document. */
  endpoints(): Promise<unknown>;
  /** The `/v1/pool` document. */
  pool(): Promise<unknown>;
}

function json(value: unknown, status = 200): Response {
  return new Response(JSON.stringify(value, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/**
 * Answers one request (exported for tests without a socket).
 *
 * @param request The request.
 * @param routes What to serve.
 * @returns The response.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { handleStatusRequest } from "./status_server.ts";
 * const routes = {
 *   metrics: () => Promise.resolve({ text: "", contentType: "text/plain" }),
 *   endpoints: () => Promise.resolve([]),
 *   pool: () => Promise.resolve({ pools: [] }),
 * };
 * const r = await handleStatusRequest(new Request("http://x/v1/pool"), routes);
 * assert.deepEqual(await r.json(), { pools: [] });
 * ```
 */
export async function handleStatusRequest(
  request: Request,
  routes: StatusRoutes,
): Promise<Response> {
  const path = new URL(request.url).pathname;
  if (!["/metrics", "/v1/endpoints", "/v1/pool"].includes(path)) {
    return json({ error: `No such path ${path}` }, 404);
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
  }
  try {
    if (path === "/metrics") {
      const m = await routes.metrics();
      return new Response(m.text, {
        headers: { "content-type": m.contentType },
      });
    }
    return json(
      path === "/v1/pool" ? await routes.pool() : await routes.endpoints(),
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    log.warning("GET {path} failed: {message}", { path, message });
    return json({ error: message }, 503);
  }
}

/**
 * The running listener.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { StatusServer } from "./status_server.ts";
 * const routes = {
 *   metrics: () => Promise.resolve({ text: "up 1\n", contentType: "text/plain" }),
 *   endpoints: () => Promise.resolve([]),
 *   pool: () => Promise.resolve({ pools: [] }),
 * };
 * await using s = StatusServer.start({ hostname: "127.0.0.1", port: 0 }, routes);
 * const r = await fetch(`http://127.0.0.1:${s.port}/metrics`);
 * assert.equal(await r.text(), "up 1\n");
 * ```
 */
export class StatusServer implements AsyncDisposable {
  #server: Deno.HttpServer<Deno.NetAddr>;

  /**
   * Use {@link StatusServer.start}.
   *
   * @param server The Deno server.
   */
  constructor(server: Deno.HttpServer<Deno.NetAddr>) {
    this.#server = server;
  }

  /**
   * Listens on `address` (port 0 picks a free port).
   *
   * @param address Host and port.
   * @param routes What to serve.
   * @returns The listener.
   * @throws {Deno.errors.AddrInUse} When the port is taken.
   *
   * @tags allow-net
   */
  static start(address: ListenAddress, routes: StatusRoutes): StatusServer {
    const server = Deno.serve({
      hostname: address.hostname,
      port: address.port,
      onListen: () => {},
    }, (request) => handleStatusRequest(request, routes));
    return new StatusServer(server);
  }

  /** The bound port. */
  get port(): number {
    return this.#server.addr.port;
  }

  /** The bound address, `host:port`. */
  get address(): string {
    const { hostname, port } = this.#server.addr;
    return hostname.includes(":")
      ? `[${hostname}]:${port}`
      : `${hostname}:${port}`;
  }

  /** Stops listening and ends open connections. Idempotent. */
  async close(): Promise<void> {
    await this.#server.shutdown().catch(() => {});
  }

  /** Same as {@link StatusServer.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
