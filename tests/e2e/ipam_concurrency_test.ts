/**
 * E2E: many `azure-vnet-ipam` processes at once against one state dir never
 * hand out an address twice (static source, and a loopback wireserver).
 */
import assert from "node:assert/strict";
import { assertCniError } from "../_support/assert.ts";
import { requireRoot } from "../_support/privilege.ts";
import {
  AZURE_VNET_IPAM_SRC,
  type CniRun,
  runCni,
} from "../../tools/testbed/mod.ts";

/** What the IPAM processes get besides `CNI_COMMAND` and `env`. */
const BASE_ENV: Readonly<Record<string, string>> = {
  PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
  HOME: Deno.env.get("HOME") ?? "/root",
  CNI_NETNS: "/proc/1/ns/net",
  CNI_PATH: "/opt/cni/bin",
};

function runIpam(
  command: string,
  conf: unknown,
  env: Record<string, string>,
): Promise<CniRun> {
  return runCni({
    argv: AZURE_VNET_IPAM_SRC,
    command,
    conf,
    env,
    baseEnv: BASE_ENV,
  });
}

function ipOf(out: unknown): string {
  const ips = (out as { ips?: { address: string }[] }).ips;
  const addr = ips?.[0]?.address;
  assert.ok(addr !== undefined, `no address in ${JSON.stringify(out)}`);
  return addr;
}

Deno.test("azure-vnet-ipam processes in parallel never share an address (static)", async () => {
  requireRoot();
  const dir = await Deno.makeTempDir({ prefix: "cnitest-ipam-" });
  try {
    const addresses = Array.from({ length: 50 }, (_, i) => `10.1.0.${i + 10}`);
    const conf = {
      cniVersion: "1.0.0",
      name: "azure",
      type: "azure-vnet-ipam",
      ipam: {
        type: "azure-vnet-ipam",
        environment: "static",
        subnet: "10.1.0.0/24",
        primaryIp: "10.1.0.4",
        addresses,
      },
    };
    const env = (i: number) => ({
      CNI_CONTAINERID: `cnitest-container-${i}`,
      CNI_IFNAME: "eth0",
      AZURE_VNET_STATE_DIR: dir,
      AZURE_VNET_LOG_DIR: dir,
    });
    // 52 ADDs for 50 addresses: exactly 50 succeed, 2 fail with 100.
    const runs = await Promise.all(
      Array.from({ length: 52 }, (_, i) => runIpam("ADD", conf, env(i))),
    );
    const ok = runs.filter((r) => r.code === 0);
    const failed = runs.filter((r) => r.code !== 0);
    assert.equal(ok.length, 50, JSON.stringify(failed.map((r) => r.json)));
    const ips = ok.map((r) => ipOf(r.json));
    assert.equal(new Set(ips).size, 50);
    assert.deepEqual(
      [...ips].sort(),
      addresses.map((a) => `${a}/24`).sort(),
    );
    for (const r of failed) {
      assertCniError(
        r.json,
        100,
        /No free address in subnet 10\.1\.0\.0\/24: 50 of 50 in use/,
      );
    }
    const state = JSON.parse(
      await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
    );
    const held = Object.values(
      state.pools["10.1.0.0/24"].addresses as Record<
        string,
        { containerId?: string }
      >,
    ).filter((r) => r.containerId !== undefined);
    assert.equal(held.length, 50);
    // Parallel DELs (one repeated, one never added) free exactly theirs.
    const delIds = [0, 1, 2, 3, 4, 5, 6, 7, 7, 51];
    const dels = await Promise.all(
      delIds.map((i) => runIpam("DEL", conf, env(i))),
    );
    assert.deepEqual(dels.map((r) => r.code), dels.map(() => 0));
    const after = JSON.parse(
      await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
    );
    const stillHeld = Object.entries(
      after.pools["10.1.0.0/24"].addresses as Record<
        string,
        { containerId?: string }
      >,
    ).filter(([, r]) => r.containerId !== undefined);
    const expected = runs.flatMap((r, i) =>
      r.code === 0 && !delIds.includes(i) ? [`cnitest-container-${i}`] : []
    );
    assert.deepEqual(
      stillHeld.map(([, r]) => r.containerId).sort(),
      expected.sort(),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("azure-vnet-ipam processes in parallel share one loopback wireserver", async () => {
  requireRoot();
  const dir = await Deno.makeTempDir({ prefix: "cnitest-ipam-" });
  // Inside the test netns only `lo` exists (MAC 00:00:...), which IPAM never
  // matches; bind the wildcard NIC to it through `master`.
  const xml = [
    "<Interfaces>",
    `<Interface MacAddress="*" IsPrimary="true">`,
    `<IPSubnet Prefix="10.240.0.0/16">`,
    `<IPAddress Address="10.240.0.4" IsPrimary="true"/>`,
    ...Array.from(
      { length: 20 },
      (_, i) => `<IPAddress Address="10.240.0.${i + 5}" IsPrimary="false"/>`,
    ),
    "</IPSubnet></Interface></Interfaces>",
  ].join("");
  let hits = 0;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => {
      hits++;
      return new Response(xml, { headers: { "content-type": "text/xml" } });
    },
  );
  try {
    const conf = {
      cniVersion: "0.3.1",
      name: "azure",
      type: "azure-vnet-ipam",
      master: "lo",
      ipam: {
        type: "azure-vnet-ipam",
        queryUrl:
          `http://127.0.0.1:${server.addr.port}/machine/plugins?comp=nmagent&type=getinterfaceinfov1`,
        queryInterval: "3600",
      },
    };
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runIpam("ADD", conf, {
          CNI_CONTAINERID: `cnitest-ws-${i}`,
          CNI_IFNAME: "eth0",
          AZURE_VNET_STATE_DIR: dir,
          AZURE_VNET_LOG_DIR: dir,
        })),
    );
    assert.deepEqual(
      runs.map((r) => r.code),
      runs.map(() => 0),
      JSON.stringify(runs.find((r) => r.code !== 0)?.json),
    );
    const ips = runs.map((r) => ipOf(r.json));
    assert.equal(new Set(ips).size, 20);
    assert.ok(ips.every((ip) => ip.endsWith("/16") && ip !== "10.240.0.4/16"));
    assert.ok(hits >= 1 && hits <= 20, `hits ${hits}`);
    // With state and a fresh refresh, a later ADD does no fetch at all.
    const before = hits;
    const late = await runIpam("ADD", conf, {
      CNI_CONTAINERID: "cnitest-ws-late",
      CNI_IFNAME: "eth0",
      AZURE_VNET_STATE_DIR: dir,
      AZURE_VNET_LOG_DIR: dir,
    });
    assertCniError(late.json, 100, /20 of 20 in use/);
    assert.equal(hits, before);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
