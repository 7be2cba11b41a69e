import assert from "node:assert/strict";
import type { IpamState } from "@vnet/ipam";
import { AgentMetrics, countAddresses } from "./metrics.ts";

const DUAL: IpamState = {
  version: 1,
  lastRefresh: 1,
  bootId: "b",
  pools: {
    "10.0.0.0/24": {
      subnet: "10.0.0.0/24",
      gateway: "10.0.0.1",
      macAddress: "000d3af9dca6",
      priority: 0,
      primaryIps: ["10.0.0.4"],
      addresses: {
        "10.0.0.5": { containerId: "c1", ifName: "eth0" },
        "10.0.0.6": {},
      },
    },
    "fd00:db8::/64": {
      subnet: "fd00:db8::/64",
      gateway: "fd00:db8::1",
      macAddress: "000d3af9dca6",
      priority: 0,
      primaryIps: [],
      addresses: {
        "fd00:db8::9": { containerId: "c1", ifName: "eth0" },
        "fd00:db8::a": {},
        "fd00:db8::b": {},
      },
    },
  },
};

Deno.test("countAddresses() counts one family's pools when asked", () => {
  assert.deepEqual(countAddresses(DUAL, { family: 4 }), {
    "in_use": 1,
    free: 1,
    stale: 0,
  });
  assert.deepEqual(countAddresses(DUAL, { family: 6 }), {
    "in_use": 1,
    free: 2,
    stale: 0,
  });
  assert.deepEqual(countAddresses(DUAL), { "in_use": 2, free: 3, stale: 0 });
});

Deno.test("AgentMetrics reports azure_vnet_ipam_addresses by family on a dual-stack node", async () => {
  const m = new AgentMetrics({
    ipamStatePath: "/unused",
    readState: () => Promise.resolve(DUAL),
  });
  const text = await m.render();
  for (
    const [family, state, n] of [
      ["ipv4", "in_use", 1],
      ["ipv4", "free", 1],
      ["ipv6", "in_use", 1],
      ["ipv6", "free", 2],
    ] as const
  ) {
    assert.match(
      text,
      new RegExp(
        `^azure_vnet_ipam_addresses\\{family="${family}",state="${state}"\\} ${n}$`,
        "m",
      ),
    );
  }
});

Deno.test("AgentMetrics drops the IPv6 series of azure_vnet_ipam_addresses once the IPv6 pools are gone", async () => {
  const { "fd00:db8::/64": _v6, ...v4Pools } = DUAL.pools;
  let state: IpamState = DUAL;
  const m = new AgentMetrics({
    ipamStatePath: "/unused",
    readState: () => Promise.resolve(state),
  });
  assert.match(await m.render(), /family="ipv6"/);
  state = { ...DUAL, pools: v4Pools };
  const text = await m.render();
  assert.doesNotMatch(text, /family="ipv6"/);
  assert.match(
    text,
    /^azure_vnet_ipam_addresses\{family="ipv4",state="free"\} 1$/m,
  );
});

Deno.test("AgentMetrics reports azure_vnet_agent_ebtables_mismatch 0, then 1 once marked", async () => {
  const m = new AgentMetrics({
    ipamStatePath: "/unused",
    readState: () => Promise.resolve(undefined),
  });
  assert.match(await m.render(), /^azure_vnet_agent_ebtables_mismatch 0$/m);
  m.markEbtablesMismatch();
  assert.match(await m.render(), /^azure_vnet_agent_ebtables_mismatch 1$/m);
});

Deno.test("AgentMetrics reports azure_vnet_agent_ready as the readiness says at each scrape", async () => {
  let ready = false;
  const m = new AgentMetrics({
    ipamStatePath: "/unused",
    readState: () => Promise.resolve(undefined),
    ready: () => ready,
  });
  assert.match(await m.render(), /^azure_vnet_agent_ready 0$/m);
  ready = true;
  assert.match(await m.render(), /^azure_vnet_agent_ready 1$/m);
  const always = new AgentMetrics({
    ipamStatePath: "/unused",
    readState: () => Promise.resolve(undefined),
  });
  assert.match(await always.render(), /^azure_vnet_agent_ready 1$/m);
});
