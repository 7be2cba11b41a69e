import assert from "node:assert/strict";
import { FakeKernel } from "./_fake_kernel.ts";
import { networkFromKernel } from "./network.ts";

const MAC = "12:34:56:78:9a:bc";

/** A node after createNetwork: eth0 on azure0, which holds its address. */
function node(opts: { addr?: string; defaultGw?: string } = {}): FakeKernel {
  const kernel = new FakeKernel();
  const host = kernel.hostNs;
  host.addLink("eth0", { mac: MAC });
  host.addBridge({ name: "azure0", mtu: 1500, mac: MAC });
  host.setMaster("eth0", "azure0");
  if (opts.addr !== undefined) host.addrAdd("azure0", opts.addr);
  if (opts.defaultGw !== undefined) {
    host.routeReplace({
      dst: "0.0.0.0/0",
      gw: opts.defaultGw,
      link: "azure0",
      protocol: "dhcp",
    });
  }
  return kernel;
}

Deno.test("networkFromKernel() reads back the network createNetwork made", () => {
  using host = node({ addr: "10.0.0.4/24", defaultGw: "10.0.0.1" }).host();
  const { network } = networkFromKernel(host, { name: "azure" });
  assert.ok(network !== undefined);
  assert.equal(network.bridge, "azure0");
  assert.equal(network.master, "eth0");
  assert.equal(network.masterMac, MAC);
  assert.equal(network.subnet, "10.0.0.0/24");
  assert.equal(network.gateway, "10.0.0.1");
  assert.equal(network.primaryIp, "10.0.0.4");
  assert.deepEqual(network.savedAddrs, ["10.0.0.4/24"]);
  assert.deepEqual(
    network.savedRoutes.map((r) => [r.dst, r.gw]),
    [["0.0.0.0/0", "10.0.0.1"]],
  );
});

Deno.test("networkFromKernel() takes the subnet and gateway of the IPAM's pool, else the first host", () => {
  {
    using host = node({ addr: "10.0.0.4/16" }).host();
    const pools = [{ subnet: "10.0.0.0/24", gateway: "10.0.0.254" }];
    const { network } = networkFromKernel(host, { name: "azure", pools });
    assert.equal(network?.subnet, "10.0.0.0/24");
    assert.equal(network?.gateway, "10.0.0.254");
  }
  {
    using host = node({ addr: "10.9.0.77/24" }).host();
    const { network } = networkFromKernel(host, { name: "azure" });
    assert.equal(network?.gateway, "10.9.0.1", "no default route: first host");
  }
});

Deno.test("networkFromKernel() names what is missing", () => {
  {
    using host = node().host();
    const found = networkFromKernel(host, { name: "azure" });
    assert.match(found.problem ?? "", /has no IPv4 address/);
  }
  {
    using host = new FakeKernel().host();
    const found = networkFromKernel(host, { name: "azure" });
    assert.match(found.problem ?? "", /no bridge holding a master/);
  }
  {
    const kernel = new FakeKernel();
    kernel.hostNs.addBridge({ name: "br9", mtu: 1500, mac: MAC });
    using host = kernel.host();
    const found = networkFromKernel(host, { name: "azure", bridge: "br9" });
    assert.match(found.problem ?? "", /holds no master/);
  }
});
