/**
 * Reliability: wireserver faults (500, 429, malformed XML, no answer) on a
 * loopback fake give code 11 within the client's bound and change no state.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import { AZURE_VNET_IPAM_SRC, runCni } from "../../tools/testbed/mod.ts";

/** The client's bound: 3 attempts of 5 s plus backoff. */
const BOUND_MS = 25_000;

type Fault = "500" | "429" | "xml" | "hang";

Deno.test("azure-vnet-ipam: wireserver faults give code 11 in time and no state change", async (t) => {
  requireRoot();
  let fault: Fault = "500";
  const hung: (() => void)[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async () => {
      switch (fault) {
        case "500":
          return new Response("boom", { status: 500 });
        case "429":
          return new Response("slow down", {
            status: 429,
            headers: { "retry-after": "0" },
          });
        case "xml":
          return new Response("<Interfaces><Interface MacAddress=", {
            headers: { "content-type": "text/xml" },
          });
        case "hang":
          await new Promise<void>((resolve) => hung.push(resolve));
          return new Response("late");
      }
    },
  );
  const dir = await Deno.makeTempDir({ prefix: "cnitest-fault-" });
  try {
    const conf = {
      cniVersion: "1.0.0",
      name: "azure",
      type: "azure-vnet-ipam",
      master: "lo",
      ipam: {
        type: "azure-vnet-ipam",
        queryUrl:
          `http://127.0.0.1:${server.addr.port}/machine/plugins?comp=nmagent&type=getinterfaceinfov1`,
      },
    };
    for (const f of ["500", "429", "xml", "hang"] as const) {
      await t.step({
        name: `${f}: code 11, no state`,
        fn: async () => {
          fault = f;
          const r = await runCni({
            argv: AZURE_VNET_IPAM_SRC,
            command: "ADD",
            conf,
            env: {
              CNI_CONTAINERID: `fault-${f}`,
              CNI_NETNS: "/proc/self/ns/net",
              CNI_IFNAME: "eth0",
              AZURE_VNET_STATE_DIR: dir,
              AZURE_VNET_LOG_DIR: dir,
            },
          });
          assert.equal(r.code, 1, r.stdout);
          assert.equal(r.json?.code, 11, r.stdout);
          assert.ok(r.ms < BOUND_MS, `took ${r.ms} ms`);
          await assert.rejects(
            Deno.stat(`${dir}/azure-vnet-ipam.json`),
            Deno.errors.NotFound,
          );
          for (const h of hung.splice(0)) h();
        },
      });
    }
  } finally {
    for (const h of hung.splice(0)) h();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
