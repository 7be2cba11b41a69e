/**
 * `fetch` for the host-local endpoints, the wireserver and IMDS: straight to
 * the URL's host and port, never through a proxy. Deno's `fetch` sends a
 * request through the proxy that `HTTP_PROXY`, `http_proxy`, `ALL_PROXY` or
 * `all_proxy` names, and a CNI plugin inherits the container runtime's
 * environment; a proxy could answer with another node's addresses, or its
 * own. `NO_PROXY` is no remedy, as it is the runtime's too.
 *
 * With Deno 2.9.6, a `Deno.createHttpClient()` without a `proxy` still
 * takes the proxy from those variables; one whose proxy is the `"tcp"`
 * transport to the URL's own host and port does not (both checked with a
 * recording proxy, `direct_fetch_test.ts`). Its request line carries the
 * absolute URL (`GET http://168.63.129.16/machine/plugins?... HTTP/1.1`),
 * the form a proxy gets, which HTTP/1.1 servers must accept; the `Host`
 * header is as usual. That transport speaks plain HTTP only, so `https`
 * URLs are refused (both endpoints serve plain HTTP). It is taken only when
 * a proxy variable is set: without one, Deno's `fetch` goes straight to the
 * host already, with the usual request line.
 *
 * ARM calls (the Azure SDK of `@vnet/arm`) may need a proxy and keep
 * Deno's.
 *
 * @module
 */

/** The variables whose proxy Deno's `fetch` takes for an `http` URL. */
const PROXY_VARIABLES = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];

/** Statuses whose response has no body (a `Response` refuses one). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/**
 * Fetches `input` over a connection to its own host and port, whatever the
 * proxy variables say, and returns the response with its body read (so
 * the connection is closed when it returns). `init.signal` bounds the
 * whole exchange, body included.
 *
 * @param input An `http` URL, or a request for one.
 * @param init Method, headers, signal.
 * @returns The response, its body in memory.
 * @throws {TypeError} For a URL that is not `http`, or a network failure.
 * @throws {DOMException} `TimeoutError` or `AbortError` from `init.signal`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { directFetch } from "./direct_fetch.ts";
 *
 * const server = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   () => new Response("direct"),
 * );
 * const res = await directFetch(`http://127.0.0.1:${server.addr.port}/`);
 * assert.equal(await res.text(), "direct");
 * await server.shutdown();
 * ```
 */
export async function directFetch(
  input: string | URL | Request,
  init: RequestInit = {},
): Promise<Response> {
  const target = new URL(input instanceof Request ? input.url : input);
  if (target.protocol !== "http:") {
    throw new TypeError(
      `Cannot fetch "${target.href}" directly: only http URLs (the wireserver and IMDS serve plain HTTP)`,
    );
  }
  const proxied = PROXY_VARIABLES.some((v) => (Deno.env.get(v) ?? "") !== "");
  using client = proxied
    ? Deno.createHttpClient({
      proxy: {
        transport: "tcp",
        // Bracketed for an IPv6 literal, as this transport wants it.
        hostname: target.hostname,
        port: target.port === "" ? 80 : Number(target.port),
      },
    })
    : undefined;
  const res = await fetch(
    input,
    client === undefined ? init : { ...init, client },
  );
  const body = NULL_BODY_STATUSES.has(res.status)
    ? null
    : await res.arrayBuffer();
  return new Response(body, {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
  });
}
