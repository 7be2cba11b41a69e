import assert from "node:assert/strict";
import {
  type CmdArgs,
  type CniCommand,
  CniError,
  parseCniArgs,
  type PluginHandlers,
  type Result,
} from "@vnet/cni";
import { createAzureVnetHandlers } from "./azure_vnet.ts";
import { Ebtables } from "./ebtables.ts";
import { FakeEbtables } from "./_fake_ebtables.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { statePath } from "./state.ts";

const NETNS = "/run/netns/pod";

/** An IPAM engine holding one address per attachment. */
class FakeIpam implements PluginHandlers {
  held = new Map<string, string>();
  calls: string[] = [];
  failDel = false;
  cmdAdd(args: CmdArgs): Promise<Result> {
    this.calls.push(`ADD ${args.containerId}`);
    const key = `${args.containerId}/${args.ifName}`;
    const ip = this.held.get(key) ?? `10.0.0.${5 + this.held.size}`;
    this.held.set(key, ip);
    return Promise.resolve({
      cniVersion: "1.1.0",
      ips: [{ address: `${ip}/24`, gateway: "10.0.0.1" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
    });
  }
  cmdDel(args: CmdArgs): Promise<void> {
    this.calls.push(`DEL ${args.containerId}`);
    if (this.failDel) {
      return Promise.reject(new CniError(11, "IPAM store busy"));
    }
    this.held.delete(`${args.containerId}/${args.ifName}`);
    return Promise.resolve();
  }
  cmdCheck(): Promise<void> {
    return Promise.resolve();
  }
}

function makeArgs(
  command: CniCommand,
  containerId: string,
  netns = NETNS,
): CmdArgs {
  const config = {
    cniVersion: "1.1.0",
    name: "azure",
    type: "azure-vnet",
    ipam: { type: "azure-vnet-ipam" },
  };
  return {
    command,
    containerId,
    netns,
    ifName: "eth0",
    args: parseCniArgs(""),
    rawArgs: "",
    path: [],
    stdin: new TextEncoder().encode(JSON.stringify(config)),
    config,
    env: {},
  };
}

async function setup() {
  const dir = await Deno.makeTempDir();
  const kernel = new FakeKernel();
  kernel.hostNs.addLink("eth0", { mac: "12:34:56:78:9a:bc" });
  kernel.hostNs.addrAdd("eth0", "10.0.0.4/24");
  kernel.hostNs.routeReplace({
    dst: "0.0.0.0/0",
    gw: "10.0.0.1",
    link: "eth0",
    protocol: "dhcp",
  });
  const pod = kernel.addNetns(NETNS);
  const rules = new FakeEbtables();
  const ipam = new FakeIpam();
  const handlers = createAzureVnetHandlers({
    stateDir: dir,
    kernel,
    ebtables: new Ebtables({ run: rules.run, restore: rules.restore }),
    ipamEngine: ipam,
  });
  return {
    dir,
    kernel,
    pod,
    rules,
    ipam,
    handlers,
    async endpoints(): Promise<string[]> {
      const st = JSON.parse(await Deno.readTextFile(statePath(dir)));
      return Object.keys(st.endpoints);
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("cmdDel() keeps the endpoint when the IPAM release fails, and a retry releases it", async () => {
  await using env = await setup();
  const { handlers, ipam, kernel } = env;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
  ipam.failDel = true;
  await assert.rejects(handlers.cmdDel(makeArgs("DEL", "c1", "")), {
    name: "CniError",
    code: 11,
    message: /IPAM store busy/,
  });
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
  assert.ok(ipam.held.has("c1/eth0"));
  assert.ok(
    ![...kernel.hostNs.linksByName.keys()].some((n) => n.startsWith("azv")),
  );
  ipam.failDel = false;
  await handlers.cmdDel(makeArgs("DEL", "c1", ""));
  assert.deepEqual(await env.endpoints(), []);
  assert.ok(!ipam.held.has("c1/eth0"));
  assert.equal(env.rules.matching(/10\.0\.0\.5/).length, 0);
});

Deno.test("cmdAdd() undoes everything, IPAM included, when a pod rule fails", async () => {
  await using env = await setup();
  const { handlers, ipam, kernel, rules } = env;
  rules.failAdd = /--ip-dst 10\.0\.0\.5/;
  await assert.rejects(handlers.cmdAdd(makeArgs("ADD", "c1")), {
    name: "CniError",
    code: 104,
    message: /Cannot add ebtables rule/,
  });
  assert.deepEqual(ipam.calls, ["ADD c1", "DEL c1"]);
  assert.equal(ipam.held.size, 0);
  assert.ok(
    ![...kernel.hostNs.linksByName.keys()].some((n) => n.startsWith("azv")),
  );
  assert.deepEqual([...env.pod.linksByName.keys()], ["lo"]);
  assert.equal(rules.matching(/10\.0\.0\.5/).length, 0);
  assert.deepEqual(await env.endpoints(), []);
  assert.equal(kernel.hostNs.neigh.size, 0);
  // The network itself stays (it was committed and serves later ADDs).
  assert.equal(
    kernel.hostNs.link("eth0")?.masterIndex,
    kernel.hostNs.link("azure0")?.index,
  );
});

Deno.test("cmdAdd() fails with 105 before IPAM when the ifname exists in the pod", async () => {
  await using env = await setup();
  env.pod.addLink("eth0");
  await assert.rejects(env.handlers.cmdAdd(makeArgs("ADD", "c1")), {
    name: "CniError",
    code: 105,
    message: /"eth0" already exists/,
  });
  assert.deepEqual(env.ipam.calls, []);
});

Deno.test("cmdAdd() is idempotent for the same container and ifname", async () => {
  await using env = await setup();
  const a = await env.handlers.cmdAdd(makeArgs("ADD", "c1"));
  const b = await env.handlers.cmdAdd(makeArgs("ADD", "c1"));
  assert.deepEqual(b, a);
  assert.deepEqual(env.ipam.calls, ["ADD c1"]);
  assert.equal(env.kernel.calls.length, 1);
});

Deno.test("cmdAdd() moves the master's address and routes to the bridge with its MAC", async () => {
  await using env = await setup();
  await env.handlers.cmdAdd(makeArgs("ADD", "c1"));
  const host = env.kernel.hostNs;
  assert.equal(host.link("azure0")?.mac, "12:34:56:78:9a:bc");
  assert.deepEqual(host.addrs("azure0").map((a) => a.cidr), ["10.0.0.4/24"]);
  assert.deepEqual(host.addrs("eth0"), []);
  assert.deepEqual(
    host.routes("azure0").map((r) => [r.dst, r.gw, r.protocol]),
    [
      ["0.0.0.0/0", "10.0.0.1", "dhcp"],
    ],
  );
});

Deno.test("cmdAdd() rebuilds a recorded network whose bridge the kernel lost (reboot)", async () => {
  await using env = await setup();
  await env.handlers.cmdAdd(makeArgs("ADD", "c1"));
  // Reboot: a fresh kernel (eth0 with its DHCP address and route, no bridge,
  // no rules) under the same state directory.
  const kernel = new FakeKernel();
  kernel.hostNs.addLink("eth0", { mac: "12:34:56:78:9a:bc" });
  kernel.hostNs.addrAdd("eth0", "10.0.0.4/24");
  kernel.hostNs.routeReplace({
    dst: "0.0.0.0/0",
    gw: "10.0.0.1",
    link: "eth0",
    protocol: "dhcp",
  });
  kernel.addNetns("/run/netns/pod2");
  const rules = new FakeEbtables();
  const handlers = createAzureVnetHandlers({
    stateDir: env.dir,
    kernel,
    ebtables: new Ebtables({ run: rules.run, restore: rules.restore }),
    ipamEngine: env.ipam,
  });
  await handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/pod2"));
  const host = kernel.hostNs;
  assert.equal(host.linksByName.get("eth0")?.master, "azure0");
  assert.deepEqual(host.addrs("azure0").map((a) => a.cidr), ["10.0.0.4/24"]);
  assert.equal(rules.matching(/snat/, "POSTROUTING").length, 1);
  assert.deepEqual((await env.endpoints()).sort(), ["c1/eth0", "c2/eth0"]);
});
