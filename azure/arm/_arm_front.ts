/**
 * Tests only: an HTTPS front for the ARM emulator (`tools/sandbox/emulator`)
 * on 127.0.0.1. It forwards every request to the emulator and its answer
 * back (operation URLs rewritten to the front), records what each request
 * carried, and answers the requests a fault matches with an injected error
 * instead. The emulator's own faults hit the next N requests whatever they
 * are; a front's fault picks its requests, e.g. only the polls of a
 * long-running operation after its PUT landed.
 *
 * @module
 */

/** One request the front saw. */
export interface FrontRequest {
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  /** The `If-Match` header, or null. */
  readonly ifMatch: string | null;
  /** The status the client got. */
  readonly status: number;
}

/** A fault: answer `count` requests that `match` with `status`. */
export interface FrontFault {
  readonly match: (request: { method: string; path: string }) => boolean;
  readonly count: number;
  readonly status: number;
}

/** A running front. */
export interface ArmFront extends AsyncDisposable {
  /** `https://127.0.0.1:PORT`, the ARM endpoint to give the client. */
  readonly url: string;
  /** Every request so far, in order. */
  readonly requests: FrontRequest[];
  /** Adds a fault (faults are tried in the order added). */
  fail(fault: FrontFault): void;
}

/**
 * Matches the polls of a long-running operation (`.../operations/{id}`).
 *
 * @param request The request.
 * @returns True for a poll.
 */
export function isOperationPoll(request: { path: string }): boolean {
  return /\/providers\/Microsoft\.Network\/locations\/[^/]+\/operations\//i
    .test(request.path);
}

/**
 * Matches a GET of a NIC.
 *
 * @param request The request.
 * @returns True for a GET of `.../networkInterfaces/{name}`.
 */
export function isNicGet(request: { method: string; path: string }): boolean {
  return request.method === "GET" &&
    /\/networkInterfaces\/[^/?]+(\?|$)/i.test(request.path);
}

/**
 * Matches a PUT (a NIC update).
 *
 * @param request The request.
 * @returns True for a PUT.
 */
export function isPut(request: { method: string }): boolean {
  return request.method === "PUT";
}

/**
 * Starts a front for `target`.
 *
 * @param options The emulator's HTTPS URL and the test TLS material (the
 * front serves the leaf and trusts the CA towards the emulator).
 * @returns The front; dispose it to stop.
 */
export async function startArmFront(options: {
  target: string;
  tls: { cert: string; key: string; caFile: string };
}): Promise<ArmFront> {
  const client = Deno.createHttpClient({
    caCerts: [await Deno.readTextFile(options.tls.caFile)],
  });
  const faults: { fault: FrontFault; left: number }[] = [];
  const requests: FrontRequest[] = [];
  let url = "";
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: options.tls.cert,
    key: options.tls.key,
    onListen() {},
  }, async (req) => {
    const u = new URL(req.url);
    const path = `${u.pathname}${u.search}`;
    const seen = { method: req.method, path };
    const note = (status: number) =>
      requests.push({ ...seen, ifMatch: req.headers.get("if-match"), status });
    const hit = faults.find((f) => f.left > 0 && f.fault.match(seen));
    if (hit !== undefined) {
      hit.left--;
      await req.body?.cancel();
      note(hit.fault.status);
      return Response.json(
        { error: { code: "FrontFault", message: "injected by the front" } },
        { status: hit.fault.status },
      );
    }
    const headers = new Headers(req.headers);
    headers.delete("host");
    const body = req.method === "GET" || req.method === "HEAD"
      ? undefined
      : await req.arrayBuffer();
    const res = await fetch(`${options.target}${path}`, {
      method: req.method,
      headers,
      ...(body === undefined ? {} : { body }),
      client,
    });
    const out = new Headers(res.headers);
    for (
      const h of ["azure-asyncoperation", "location", "operation-location"]
    ) {
      const v = out.get(h);
      if (v !== null) out.set(h, v.replace(options.target, url));
    }
    out.delete("content-length");
    note(res.status);
    return new Response(await res.arrayBuffer(), {
      status: res.status,
      headers: out,
    });
  });
  url = `https://127.0.0.1:${server.addr.port}`;
  return {
    url,
    requests,
    fail(fault) {
      faults.push({ fault, left: fault.count });
    },
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      client.close();
    },
  };
}
