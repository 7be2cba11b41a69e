/**
 * Test helper: a real `Deno.serve` listener on 127.0.0.1 (port 0) that
 * answers from a scripted handler and records requests.
 *
 * @module
 */

/** What the server saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: Headers;
}

/** A listener plus what it saw. */
export interface TestServer extends AsyncDisposable {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Requests seen, in order. */
  requests: SeenRequest[];
}

/**
 * Starts a listener on 127.0.0.1 with an ephemeral port.
 *
 * @param handler Answers request number `n` (0-based).
 * @returns The server; dispose it with `await using`.
 */
export function startTestServer(
  handler: (req: Request, n: number) => Response | Promise<Response>,
): TestServer {
  const requests: SeenRequest[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      requests.push({
        method: req.method,
        url: req.url,
        headers: new Headers(req.headers),
      });
      return handler(req, requests.length - 1);
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
    },
  };
}

/**
 * Starts a listener on 127.0.0.1 that records requests and answers none
 * until it is disposed (a host that does not answer in time).
 *
 * @returns The server; dispose it with `await using`.
 */
export function startSilentServer(): TestServer {
  const pending: Array<() => void> = [];
  const server = startTestServer(() =>
    new Promise<Response>((resolve) => {
      pending.push(() => resolve(new Response("late")));
    })
  );
  return {
    url: server.url,
    requests: server.requests,
    async [Symbol.asyncDispose]() {
      for (const release of pending) release();
      await server[Symbol.asyncDispose]();
    },
  };
}

/** A sleep that records its delays and returns at once. */
export function recordingSleep(): {
  delays: number[];
  sleep: (ms: number) => Promise<void>;
} {
  const delays: number[] = [];
  return {
    delays,
    sleep(ms: number) {
      delays.push(ms);
      return Promise.resolve();
    },
  };
}
