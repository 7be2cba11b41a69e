import assert from "node:assert/strict";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { withState } from "@vnet/azure-vnet";
import { writeFileAtomic } from "@vnet/cni";
import { IPAM_STATE_FILE } from "@vnet/ipam";
import { parseAgentConfig } from "./config.ts";
import { AgentMetrics } from "./metrics.ts";
import { startNodeServices } from "./services.ts";

/** One family as parse-prometheus-text-format returns it. */
interface Family {
  name: string;
  help: string;
  type: string;
  metrics: {
    value?: string;
    labels?: Record<string, string>;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }[];
}

const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"`;
const VALUE =
  "(?:[-+]?(?:\\d+(?:\\.\\d*)?|\\.\\d+)(?:[eE][-+]?\\d+)?|[-+]?Inf|NaN)";
const SAMPLE = new RegExp(
  `^(${NAME})(?:\\{(?:${LABEL}(?:,${LABEL})*,?)?\\})? (${VALUE})(?: -?\\d+)?$`,
);

/**
 * A strict reading of the text exposition format 0.0.4: every line is a
 * HELP, a TYPE or a sample; a family's TYPE comes before its samples and
 * once; histogram buckets grow with `le` and end at `+Inf` = `_count`.
 */
function strictParse(text: string): Map<string, number> {
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta !== null) {
      assert.match(meta[2] ?? "", new RegExp(`^${NAME}$`), line);
      if (meta[1] === "TYPE") {
        assert.ok(!types.has(meta[2] ?? ""), `TYPE twice: ${line}`);
        assert.match(
          meta[3] ?? "",
          /^(counter|gauge|histogram|summary|untyped)$/,
        );
        types.set(meta[2] ?? "", meta[3] ?? "");
      }
      continue;
    }
    assert.ok(!line.startsWith("#"), `an unknown comment line: ${line}`);
    const m = SAMPLE.exec(line);
    assert.ok(m !== null, `not a sample line: ${JSON.stringify(line)}`);
    const name = m[1] ?? "";
    const family = name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(
      types.has(name) || types.get(family) === "histogram",
      `a sample before its TYPE: ${line}`,
    );
    const key = line.slice(0, line.lastIndexOf(" "));
    assert.ok(!samples.has(key), `a sample twice: ${line}`);
    samples.set(key, Number(m[2]));
  }
  for (const [name, type] of types) {
    if (type !== "histogram") continue;
    const byLabels = new Map<string, [number, number][]>();
    for (const [key, v] of samples) {
      const m = new RegExp(`^${name}_bucket\\{(.*)\\}$`).exec(key);
      if (m === null) continue;
      const labels = (m[1] ?? "").split(",").filter((l) =>
        !l.startsWith("le=")
      );
      const le = /le="([^"]+)"/.exec(m[1] ?? "")?.[1] ?? "";
      const id = labels.join(",");
      const list = byLabels.get(id) ?? [];
      list.push([le === "+Inf" ? Infinity : Number(le), v]);
      byLabels.set(id, list);
    }
    for (const [id, list] of byLabels) {
      list.sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < list.length; i++) {
        assert.ok((list[i]?.[1] ?? 0) >= (list[i - 1]?.[1] ?? 0), name);
      }
      assert.equal(list.at(-1)?.[0], Infinity, `${name} has a +Inf bucket`);
      const count = samples.get(`${name}_count${id === "" ? "" : `{${id}}`}`);
      assert.equal(list.at(-1)?.[1], count, `${name}{${id}} +Inf = _count`);
    }
  }
  return samples;
}

function family(families: Family[], name: string): Family {
  const f = families.find((x) => x.name === name);
  assert.ok(f !== undefined, `metric ${name} is exposed`);
  return f;
}

const ENDPOINT = {
  network: "azure",
  containerId: "c1",
  ifName: "eth0",
  netns: "/run/netns/p1",
  hostVeth: "azv0123456789a",
  hostMac: "02:00:00:00:00:01",
  podMac: "02:00:00:00:00:02",
  mtu: 1500,
  addresses: ["10.0.0.5/24"],
  ipamRoute: "in-process" as const,
  result: { cniVersion: "1.1.0" },
};

const IPAM_STATE = {
  version: 1,
  lastRefresh: 5,
  bootId: "b",
  pools: {
    "10.0.0.0/24": {
      subnet: "10.0.0.0/24",
      gateway: "10.0.0.1",
      ifName: "eth0",
      macAddress: "000d3af9dca6",
      priority: 0,
      primaryIps: ["10.0.0.4"],
      addresses: {
        "10.0.0.5": { containerId: "c1", ifName: "eth0", network: "azure" },
        "10.0.0.6": { lastPod: "db/pg-0", releasedAt: 4 },
        "10.0.0.7": {},
        "10.0.0.8": {
          containerId: "c9",
          ifName: "eth0",
          network: "azure",
          stale: true,
        },
      },
    },
  },
};

Deno.test("startNodeServices() serves metrics and introspection on loopback", async (t) => {
  const dir = await Deno.makeTempDir();
  let clock = 1_000_000;
  const services = await startNodeServices({
    stateDir: dir,
    env: {},
    config: parseAgentConfig({ metrics: { address: "127.0.0.1:0" } }),
    now: () => clock,
  });
  try {
    const base = `http://${services.address}`;
    assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/);
    // Two state writes the agent observes, as its handlers' would be.
    await writeFileAtomic(
      `${dir}/${IPAM_STATE_FILE}`,
      new TextEncoder().encode(JSON.stringify(IPAM_STATE)),
    );
    await withState(dir, async (s) => {
      s.state.endpoints["c1/eth0"] = ENDPOINT;
      await s.save();
    });
    services.served({
      plugin: "azure-vnet",
      command: "ADD",
      containerId: "c1",
      ifName: "eth0",
      code: 0,
      seconds: 0.03,
    });
    services.served({
      plugin: "azure-vnet",
      command: "ADD",
      containerId: "c2",
      ifName: "eth0",
      code: 100,
      seconds: 0.2,
    });
    services.served({
      plugin: "azure-vnet",
      command: "DEL",
      containerId: "c3",
      ifName: "eth0",
      code: 0,
      seconds: 0.004,
    });
    services.metrics.observeArm({ operation: "update", result: "throttled" });
    clock += 42_000;

    await t.step("GET /metrics parses strictly and with a parser", async () => {
      const r = await fetch(`${base}/metrics`);
      assert.equal(r.status, 200);
      assert.match(
        r.headers.get("content-type") ?? "",
        /^text\/plain; version=0\.0\.4/,
      );
      const text = await r.text();
      const samples = strictParse(text);
      const families = parsePrometheusTextFormat(text) as Family[];
      const requests = family(families, "azure_vnet_cni_requests_total");
      assert.equal(requests.type, "COUNTER");
      assert.deepEqual(
        requests.metrics.map((m) => [m.labels, m.value]),
        [
          [{ command: "ADD", code: "0" }, "1"],
          [{ command: "ADD", code: "100" }, "1"],
          [{ command: "DEL", code: "0" }, "1"],
        ],
      );
      const duration = family(
        families,
        "azure_vnet_cni_request_duration_seconds",
      );
      assert.equal(duration.type, "HISTOGRAM");
      assert.equal(
        samples.get(
          'azure_vnet_cni_request_duration_seconds_count{command="ADD"}',
        ),
        2,
      );
      assert.equal(
        samples.get(
          'azure_vnet_cni_request_duration_seconds_bucket{le="0.05",command="ADD"}',
        ),
        1,
      );
      const addresses = family(families, "azure_vnet_ipam_addresses");
      assert.equal(addresses.type, "GAUGE");
      assert.deepEqual(
        Object.fromEntries(
          addresses.metrics.map((
            m,
          ) => [`${m.labels?.family}/${m.labels?.state}`, m.value]),
        ),
        { "ipv4/in_use": "1", "ipv4/free": "2", "ipv4/stale": "1" },
      );
      assert.equal(
        samples.get(
          'azure_vnet_arm_requests_total{operation="update",result="throttled"}',
        ),
        1,
      );
      assert.equal(
        family(families, "azure_vnet_state_write_duration_seconds").type,
        "HISTOGRAM",
      );
      assert.equal(
        samples.get("azure_vnet_state_write_duration_seconds_count"),
        2,
      );
      assert.equal(samples.get("azure_vnet_agent_up"), 1);
    });

    await t.step("GET /v1/pool lists addresses and their states", async () => {
      const r = await fetch(`${base}/v1/pool`);
      assert.equal(r.status, 200);
      assert.deepEqual(await r.json(), {
        lastRefresh: 5,
        pools: [{
          subnet: "10.0.0.0/24",
          gateway: "10.0.0.1",
          ifName: "eth0",
          macAddress: "000d3af9dca6",
          primaryIps: ["10.0.0.4"],
          counts: { in_use: 1, free: 2, stale: 1 },
          addresses: [
            {
              address: "10.0.0.5",
              state: "in_use",
              containerId: "c1",
              ifName: "eth0",
              network: "azure",
            },
            {
              address: "10.0.0.6",
              state: "free",
              lastPod: "db/pg-0",
              releasedAt: 4,
            },
            { address: "10.0.0.7", state: "free" },
            {
              address: "10.0.0.8",
              state: "stale",
              containerId: "c9",
              ifName: "eth0",
              network: "azure",
            },
          ],
        }],
      });
    });

    await t.step(
      "GET /v1/endpoints gives container, ifname, address, MAC, age",
      async () => {
        const r = await fetch(`${base}/v1/endpoints`);
        assert.equal(r.status, 200);
        assert.deepEqual(await r.json(), [{
          network: "azure",
          containerId: "c1",
          ifName: "eth0",
          address: "10.0.0.5/24",
          addresses: ["10.0.0.5/24"],
          mac: "02:00:00:00:00:02",
          hostVeth: "azv0123456789a",
          netns: "/run/netns/p1",
          ageSeconds: 42,
        }]);
      },
    );

    await t.step("other paths are 404, other methods 405", async () => {
      const missing = await fetch(`${base}/v1/nothing`);
      assert.equal(missing.status, 404);
      await missing.body?.cancel();
      const post = await fetch(`${base}/v1/pool`, { method: "POST" });
      assert.equal(post.status, 405);
      await post.body?.cancel();
    });

    await t.step("a corrupt state file is 503, not a crash", async () => {
      await Deno.writeTextFile(`${dir}/${IPAM_STATE_FILE}`, "{");
      const r = await fetch(`${base}/v1/pool`);
      assert.equal(r.status, 503);
      assert.match((await r.json()).error, /azure-vnet-ipam\.json/);
      const m = await fetch(`${base}/metrics`);
      assert.equal(m.status, 200);
      assert.doesNotMatch(await m.text(), /^azure_vnet_ipam_addresses\{/m);
    });
  } finally {
    await services.close();
    await Deno.remove(dir, { recursive: true });
  }
  assert.match(await services.metrics.render(), /^azure_vnet_agent_up 0$/m);
});

Deno.test("startNodeServices() serves CNI without a listener when its port is taken", async () => {
  const dir = await Deno.makeTempDir();
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const services = await startNodeServices({
      stateDir: dir,
      env: {},
      config: parseAgentConfig({
        metrics: { address: `127.0.0.1:${taken.addr.port}` },
      }),
    });
    assert.equal(services.address, undefined);
    services.served({
      plugin: "azure-vnet",
      command: "ADD",
      containerId: "c",
      ifName: "eth0",
      code: 0,
      seconds: 0.01,
    });
    await services.close();
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AgentMetrics renders every metric family before any traffic", async () => {
  const m = new AgentMetrics({ ipamStatePath: "/nonexistent/x.json" });
  const text = await m.render();
  strictParse(text);
  for (
    const name of [
      "azure_vnet_cni_requests_total",
      "azure_vnet_cni_request_duration_seconds",
      "azure_vnet_ipam_addresses",
      "azure_vnet_arm_requests_total",
      "azure_vnet_state_write_duration_seconds",
      "azure_vnet_agent_up",
    ]
  ) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, "m"));
  }
  assert.match(
    text,
    /^azure_vnet_ipam_addresses\{family="ipv4",state="free"\} 0$/m,
  );
});
