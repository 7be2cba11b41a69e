import assert from "node:assert/strict";
import { type CmdArgs, type CniCommand, CniError } from "@vnet/cni";
import { createAzureVnetHandlers } from "./azure_vnet.ts";
import { Ebtables } from "./ebtables.ts";
import { FakeEbtables } from "./_fake_ebtables.ts";
import { NetlinkError, NLE } from "@vnet/netlink";
import { statePath } from "./state.ts";
import {
  fakeNode,
  forget,
  NETNS,
  pluginArgs,
  pluginGcArgs,
  type PluginHarness,
  setupPlugin,
} from "./_plugin_harness.ts";
import { runThroughSkel } from "../../../tests/_support/skel.ts";

function makeArgs(
  command: CniCommand,
  containerId: string,
  netns = NETNS,
): CmdArgs {
  return pluginArgs(command, containerId, { netns });
}

function setup() {
  return setupPlugin();
}

function gcArgs(valid: string[]): CmdArgs {
  return pluginGcArgs(valid);
}

/**
 * ADDs each container in a netns of its own, `/run/netns/gc<i>`.
 *
 * @returns Their host veths, in order.
 */
async function addPods(env: PluginHarness, ids: string[]): Promise<string[]> {
  const veths: string[] = [];
  for (const [i, c] of ids.entries()) {
    const ns = `/run/netns/gc${i}`;
    env.kernel.addNetns(ns);
    const r = await env.handlers.cmdAdd(makeArgs("ADD", c, ns));
    veths.push(r.interfaces?.[0]?.name ?? "");
  }
  return veths;
}

/** The pod rules (ARP reply, IPv4 DNAT) for an address. */
function podRulesFor(rules: FakeEbtables, ip: string): string[] {
  return rules.matching(new RegExp(`-dst ${ip.replaceAll(".", "\\.")}\\b`));
}

/** The anti-spoofing rules of a host veth. */
function spoofRulesOf(rules: FakeEbtables, veth: string): string[] {
  return rules.matching(new RegExp(`-i ${veth} `));
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

Deno.test("cmdDel() releases the address only once its ebtables rules are gone", async () => {
  await using env = await setup();
  const { handlers, ipam, rules } = env;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  assert.ok(rules.matching(/10\.0\.0\.5/).length > 0);
  // The rules' exec is slow; the release looks at what is left of them.
  const run = rules.run;
  rules.run = async (argv) => {
    await new Promise((r) => setTimeout(r, 5));
    return await run(argv);
  };
  let leftAtRelease: string[] | undefined;
  const release = ipam.release.bind(ipam);
  ipam.release = (args, key) => {
    leftAtRelease = rules.matching(/10\.0\.0\.5/);
    return release(args, key);
  };
  await handlers.cmdDel(makeArgs("DEL", "c1", ""));
  assert.deepEqual(leftAtRelease, []);
  assert.deepEqual(await env.endpoints(), []);
});

Deno.test("cmdDel() releases while the veth goes, and reports a failed veth before a failed release", async () => {
  await using env = await setup();
  const { handlers, ipam, kernel } = env;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  const host = kernel.hostNs;
  const delLink = host.delLink.bind(host);
  // The kernel's wait for the veth ends only after the release ran.
  let releasedBefore: boolean | undefined;
  host.delLink = async (name) => {
    await new Promise((r) => setTimeout(r, 5));
    releasedBefore = ipam.calls.includes("DEL c1");
    throw new Deno.errors.Busy(`veth "${name}" busy`);
  };
  ipam.failDel = true;
  const err = await handlers.cmdDel(makeArgs("DEL", "c1", "")).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof CniError);
  // The code of the first failure: the veth's (103), not the release's.
  assert.equal(err.code, 103);
  assert.match(err.message, /Cannot fully delete endpoint "c1\/eth0"/);
  assert.match(err.details ?? "", /delete veth[\s\S]*IPAM store busy/);
  assert.ok(releasedBefore);
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
  // The neighbour and rules went anyway; a retry finishes the work.
  assert.equal(env.rules.matching(/10\.0\.0\.5/).length, 0);
  host.delLink = delLink;
  ipam.failDel = false;
  await handlers.cmdDel(makeArgs("DEL", "c1", ""));
  assert.deepEqual(await env.endpoints(), []);
  assert.ok(!ipam.held.has("c1/eth0"));
});

Deno.test("cmdDel() keeps the address while the pod's rules or neighbours are left", async (t) => {
  const cases = [
    {
      name: "a pod rule's removal fails (ebtables exit 4)",
      code: 104,
      message: /Cannot delete ebtables rule/,
      fail(env: Awaited<ReturnType<typeof setup>>) {
        env.rules.failDel = /10\.0\.0\.5\b/;
        return () => env.rules.failDel = undefined;
      },
    },
    {
      name: "a neighbour's removal fails",
      code: 103,
      message: /Cannot delete neighbour "10\.0\.0\.5"/,
      fail(env: Awaited<ReturnType<typeof setup>>) {
        const host = env.kernel.hostNs;
        const neighDel = host.neighDel.bind(host);
        host.neighDel = (link) => {
          throw new Error(`neighbour table of "${link}" unreadable`);
        };
        return () => host.neighDel = neighDel;
      },
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await using env = await setup();
      const { handlers, ipam, kernel } = env;
      await handlers.cmdAdd(makeArgs("ADD", "c1"));
      const restore = c.fail(env);
      await assert.rejects(handlers.cmdDel(makeArgs("DEL", "c1", "")), {
        name: "CniError",
        code: c.code,
        message: c.message,
      });
      assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
      assert.equal(ipam.held.get("c1/eth0"), "10.0.0.5");
      assert.ok(!ipam.calls.includes("DEL c1"), ipam.calls.join(", "));
      // The address is not handed out again while c1's traces are left.
      kernel.addNetns("/run/netns/c2");
      await handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/c2"));
      assert.equal(ipam.held.get("c2/eth0"), "10.0.0.6");
      restore();
      await handlers.cmdDel(makeArgs("DEL", "c1", ""));
      assert.deepEqual(await env.endpoints(), ["c2/eth0"]);
      assert.ok(!ipam.held.has("c1/eth0"));
      assert.equal(env.rules.matching(/10\.0\.0\.5\b/).length, 0);
      assert.equal(kernel.hostNs.neighMac("azure0", "10.0.0.5"), undefined);
      await handlers.cmdCheck?.(makeArgs("CHECK", "c2", "/run/netns/c2"));
    });
  }
});

Deno.test("cmdDel() retried after its release leaves the neighbour of the address's new owner", async () => {
  await using env = await setup();
  const { handlers, ipam, kernel } = env;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  const c1Mac = kernel.hostNs.neighMac("azure0", "10.0.0.5");
  const host = kernel.hostNs;
  const delLink = host.delLink.bind(host);
  // The veth's deletion fails after the neighbours and rules went: the
  // release ran alongside, the record stays for the retry.
  host.delLink = (name) =>
    Promise.reject(new Deno.errors.Busy(`veth "${name}" busy`));
  await assert.rejects(handlers.cmdDel(makeArgs("DEL", "c1", "")), {
    name: "CniError",
    code: 103,
    message: /Cannot delete veth "azv/,
  });
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
  assert.ok(!ipam.held.has("c1/eth0"));
  host.delLink = delLink;
  // c2 gets the address, with its own neighbour and rules.
  kernel.addNetns("/run/netns/c2");
  await handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/c2"));
  assert.equal(ipam.held.get("c2/eth0"), "10.0.0.5");
  const c2Mac = kernel.hostNs.neighMac("azure0", "10.0.0.5");
  assert.ok(c2Mac !== undefined && c2Mac !== c1Mac);
  const c2Rules = env.rules.matching(/10\.0\.0\.5\b/);
  // Its ARP reply and DNAT, and the two anti-spoofing rules of its veth
  // that name the address.
  assert.equal(podRulesFor(env.rules, "10.0.0.5").length, 2);
  assert.equal(c2Rules.length, 4);
  await handlers.cmdDel(makeArgs("DEL", "c1", ""));
  assert.deepEqual(await env.endpoints(), ["c2/eth0"]);
  assert.equal(kernel.hostNs.neighMac("azure0", "10.0.0.5"), c2Mac);
  assert.deepEqual(env.rules.matching(/10\.0\.0\.5\b/), c2Rules);
  assert.equal(ipam.held.get("c2/eth0"), "10.0.0.5");
  await handlers.cmdCheck?.(makeArgs("CHECK", "c2", "/run/netns/c2"));
});

/** Waits until `p` settles or `ms` have passed (the timer is cleared). */
async function settledOrLate(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  try {
    await Promise.race([p.catch(() => {}), late]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("cmdDel() without a record leaves the address's new owner whose ADD has not recorded it yet", async (t) => {
  await using env = await setup();
  const { handlers, ipam, kernel, rules } = env;
  const r3 = await handlers.cmdAdd(makeArgs("ADD", "c3"));
  const oldMac = kernel.hostNs.neighMac("azure0", "10.0.0.5");
  await handlers.cmdDel(makeArgs("DEL", "c3"));
  kernel.addNetns("/run/netns/c5");
  // The state lock is held: c5's ADD reserves 10.0.0.5, plumbs it with its
  // own MAC, and waits to record it.
  const lock = await Deno.open(`${statePath(env.dir)}.lock`, {
    read: true,
    write: true,
    create: true,
  });
  const exclusive = true;
  await lock.lock(exclusive);
  const add5 = handlers.cmdAdd(makeArgs("ADD", "c5", "/run/netns/c5"));
  for (let i = 0; i < 500 && podRulesFor(rules, "10.0.0.5").length < 2; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const newMac = kernel.hostNs.neighMac("azure0", "10.0.0.5");
  assert.ok(newMac !== undefined && newMac !== oldMac);
  // c5's ARP reply and DNAT, and its veth's anti-spoofing rules (c3's went
  // with its DEL).
  const rules5 = rules.matching(/10\.0\.0\.5\b|-i azv/);
  assert.equal(podRulesFor(rules, "10.0.0.5").length, 2);
  assert.equal(rules5.length, 7);
  assert.deepEqual(await env.endpoints(), []);
  const dels: Promise<void>[] = [];
  const cases: { name: string; args: CmdArgs; exec?: boolean }[] = [
    {
      name: "with the old prevResult (its MAC and address)",
      args: pluginArgs("DEL", "c3", { netns: "", config: { prevResult: r3 } }),
    },
    {
      name: "with nothing known: no prevResult, no pod end, nothing held",
      args: makeArgs("DEL", "c3", ""),
    },
    {
      name: "through an exec'd IPAM, which cannot tell who holds what",
      args: pluginArgs("DEL", "c3", { netns: "", config: { prevResult: r3 } }),
      exec: true,
    },
  ];
  const holdings = ipam.holdings.bind(ipam);
  for (const c of cases) {
    await t.step(c.name, async () => {
      ipam.holdings = c.exec ? () => Promise.resolve(undefined) : holdings;
      const del = handlers.cmdDel(c.args);
      dels.push(del);
      await settledOrLate(del, 500);
      assert.equal(kernel.hostNs.neighMac("azure0", "10.0.0.5"), newMac);
      assert.deepEqual(rules.matching(/10\.0\.0\.5\b|-i azv/), rules5);
      assert.equal(ipam.held.get("c5/eth0"), "10.0.0.5");
    });
  }
  ipam.holdings = holdings;
  await lock.unlock();
  lock.close();
  await Promise.all(dels);
  const r5 = await add5;
  assert.deepEqual(await env.endpoints(), ["c5/eth0"]);
  assert.equal(kernel.hostNs.neighMac("azure0", "10.0.0.5"), newMac);
  assert.deepEqual(rules.matching(/10\.0\.0\.5\b|-i azv/), rules5);
  await handlers.cmdCheck?.(
    pluginArgs("CHECK", "c5", {
      netns: "/run/netns/c5",
      config: { prevResult: r5 },
    }),
  );
});

Deno.test("cmdDel() without a record keeps the reservation while a rule it found is left", async () => {
  await using env = await setup();
  const { handlers, ipam, rules } = env;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  // As the in-process route: the reservation names the address.
  ipam.holdings = () => {
    const ip = ipam.held.get("c1/eth0");
    return Promise.resolve({
      own: ip === undefined ? [] : [`${ip}/24`],
      others: new Set<string>(),
    });
  };
  await forget(env.dir, "c1/eth0");
  rules.failDel = /10\.0\.0\.5\b/;
  await assert.rejects(handlers.cmdDel(makeArgs("DEL", "c1")), {
    name: "CniError",
    code: 104,
    message: /Cannot delete ebtables rule/,
  });
  assert.equal(ipam.held.get("c1/eth0"), "10.0.0.5");
  assert.ok(!ipam.calls.includes("DEL c1"), ipam.calls.join(", "));
  // The retry finds the rules by the reservation, and only then releases.
  rules.failDel = undefined;
  await handlers.cmdDel(makeArgs("DEL", "c1", ""));
  assert.equal(rules.matching(/10\.0\.0\.5\b/).length, 0);
  assert.ok(!ipam.held.has("c1/eth0"));
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

Deno.test("cmdAdd() reports the original code when network rollback steps fail too", async (t) => {
  const cases = [
    { name: "kernel failure", fail: () => new Error("no route"), code: 103 },
    {
      name: "NLE_BUSY",
      fail: () =>
        new NetlinkError("replace route", "0.0.0.0/0", {
          nlCode: NLE.BUSY,
          nlMessage: "Device or resource busy",
        }),
      code: 11,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      await using env = await setup();
      const host = env.kernel.hostNs;
      // Forward: moving the default route onto the bridge fails. Undo:
      // releasing the master and restoring its routes fail as well.
      host.routeReplace = () => {
        throw c.fail();
      };
      const setMaster = host.setMaster.bind(host);
      host.setMaster = (name, master) => {
        if (master === undefined) throw new Error("release refused");
        setMaster(name, master);
      };
      await assert.rejects(env.handlers.cmdAdd(makeArgs("ADD", "c1")), {
        name: "CniError",
        code: c.code,
        message: /Cannot create network "azure"/,
      });
      assert.deepEqual(env.ipam.calls, ["ADD c1", "DEL c1"]);
      assert.equal(env.ipam.held.size, 0);
      assert.equal(host.link("azure0"), undefined);
      assert.deepEqual(host.addrs("eth0").map((a) => a.cidr), ["10.0.0.4/24"]);
    });
  }
});

Deno.test("cmdAdd() reports the original code when endpoint rollback steps fail too", async () => {
  await using env = await setup();
  const { handlers, ipam, kernel, rules } = env;
  kernel.addNetns("/run/netns/pod0");
  await handlers.cmdAdd(makeArgs("ADD", "c0", "/run/netns/pod0"));
  const host = kernel.hostNs;
  rules.failAdd = /--ip-dst 10\.0\.0\.6/;
  host.delLink = () => {
    throw new Error("veth delete refused");
  };
  host.neighDel = () => {
    throw new Error("neighbour delete refused");
  };
  await assert.rejects(handlers.cmdAdd(makeArgs("ADD", "c1")), {
    name: "CniError",
    code: 104,
    message: /Cannot add ebtables rule/,
  });
  assert.deepEqual(ipam.calls, ["ADD c0", "ADD c1", "DEL c1"]);
  assert.deepEqual(await env.endpoints(), ["c0/eth0"]);
});

Deno.test("cmdAdd() asks the IPAM for the live network's subnet", async () => {
  await using env = await setup();
  env.kernel.addNetns("/run/netns/pod2");
  await env.handlers.cmdAdd(makeArgs("ADD", "c1"));
  await env.handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/pod2"));
  assert.deepEqual(env.ipam.subnets, [undefined, "10.0.0.0/24"]);
});

Deno.test("cmdAdd() refuses with 107 an address outside the network's subnet and leaves nothing", async () => {
  await using env = await setup();
  const { handlers, ipam, kernel, rules } = env;
  kernel.addNetns("/run/netns/pod2");
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  const linksBefore = [...kernel.hostNs.linksByName.keys()].sort();
  const rulesBefore = rules.rules.length;
  ipam.otherSubnet = true;
  await assert.rejects(
    handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/pod2")),
    (err: unknown) => {
      assert.ok(err instanceof CniError);
      assert.equal(err.code, 107);
      for (
        const part of [
          '"10.9.0.6/24"',
          'network "azure"',
          '"10.0.0.0/24"',
          'master "eth0"',
        ]
      ) assert.ok(err.message.includes(part), err.message);
      return true;
    },
  );
  assert.deepEqual(ipam.calls, ["ADD c1", "ADD c2", "DEL c2"]);
  assert.deepEqual([...ipam.held.keys()], ["c1/eth0"]);
  assert.deepEqual([...kernel.hostNs.linksByName.keys()].sort(), linksBefore);
  assert.deepEqual(
    [...(kernel.namespaces.get("/run/netns/pod2")?.linksByName.keys() ?? [])],
    ["lo"],
  );
  assert.equal(rules.rules.length, rulesBefore);
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
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
  assert.deepEqual(env.kernel.calls, [
    `addVeth ${a.interfaces?.[0]?.name}`,
    "sysctl net.ipv6.conf.eth0.accept_ra=0",
  ]);
  const calls = [...env.kernel.calls];
  const b = await env.handlers.cmdAdd(makeArgs("ADD", "c1"));
  assert.deepEqual(b, a);
  assert.deepEqual(env.ipam.calls, ["ADD c1"]);
  assert.deepEqual(env.kernel.calls, calls);
});

Deno.test("cmdAdd() repeated after a DEL killed halfway attaches the pod again, whole", async (t) => {
  await t.step("the neighbour and the rules were gone", async () => {
    await using env = await setup();
    const { handlers, kernel, rules } = env;
    const a = await handlers.cmdAdd(makeArgs("ADD", "c1"));
    const veth = a.interfaces?.[0]?.name ?? "";
    // What a DEL killed after its first steps leaves: the pod end is there.
    // (The pod's rules go in one transaction, its veth's included.)
    kernel.hostNs.neighDel("azure0", "10.0.0.5");
    for (const r of rules.matching(new RegExp(`10\\.0\\.0\\.5|-i ${veth} `))) {
      await rules.run(["-t", "nat", "-D", "PREROUTING", ...r.split(" ")]);
    }
    const b = await handlers.cmdAdd(makeArgs("ADD", "c1"));
    assert.deepEqual(b.ips, a.ips);
    assert.ok(
      kernel.hostNs.neighs("azure0").some((n) => n.ip === "10.0.0.5"),
      "the neighbour is back",
    );
    assert.equal(podRulesFor(rules, "10.0.0.5").length, 2);
    const mac = b.interfaces?.[1]?.mac ?? "";
    const spoof = spoofRulesOf(rules, veth);
    assert.equal(spoof.length, 5, spoof.join("\n"));
    assert.equal(spoof.filter((r) => r.includes(mac)).length, 2);
    await handlers.cmdCheck?.(makeArgs("CHECK", "c1"));
  });
  await t.step(
    "not over the node's own rules, which attaching again cannot mend",
    async () => {
      await using env = await setup();
      const { handlers, rules, kernel } = env;
      const a = await handlers.cmdAdd(makeArgs("ADD", "c1"));
      for (const r of rules.matching(/snat/, "POSTROUTING")) {
        await rules.run(["-t", "nat", "-D", "POSTROUTING", ...r.split(" ")]);
      }
      const calls = kernel.calls.length;
      const b = await handlers.cmdAdd(makeArgs("ADD", "c1"));
      assert.deepEqual(b, a, "the recorded result, nothing re-made");
      assert.equal(kernel.calls.length, calls);
    },
  );
  await t.step("the IPAM had released the address", async () => {
    await using env = await setup();
    const { handlers, ipam } = env;
    await handlers.cmdAdd(makeArgs("ADD", "c1"));
    ipam.held.delete("c1/eth0");
    await handlers.cmdAdd(makeArgs("ADD", "c1"));
    assert.deepEqual(ipam.calls, ["ADD c1", "ADD c1"]);
    assert.ok(ipam.held.has("c1/eth0"), "held again");
  });
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
  const kernel = fakeNode();
  kernel.addNetns("/run/netns/pod2");
  const rules = new FakeEbtables();
  const handlers = createAzureVnetHandlers({
    stateDir: env.dir,
    kernel,
    ebtables: new Ebtables({ run: rules.run, restore: rules.restore }),
    ipam: env.ipam,
  });
  await handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/pod2"));
  const host = kernel.hostNs;
  assert.equal(host.linksByName.get("eth0")?.master, "azure0");
  assert.deepEqual(host.addrs("azure0").map((a) => a.cidr), ["10.0.0.4/24"]);
  assert.equal(rules.matching(/snat/, "POSTROUTING").length, 1);
  assert.deepEqual((await env.endpoints()).sort(), ["c1/eth0", "c2/eth0"]);
});

/** Forgets an endpoint record, as a kill -9 before the record leaves it. */
Deno.test("cmdAdd() recovers from an ADD killed before its record", async (t) => {
  await using env = await setup();
  const { handlers, kernel, pod, rules } = env;
  // Listings print MACs without leading zeros (seen with some ebtables).
  rules.shortMacs = true;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  const veth = [...kernel.hostNs.linksByName.keys()].find((n) =>
    n.startsWith("azv")
  );
  assert.ok(veth !== undefined);
  const oldMac = pod.link("eth0")?.mac;
  await forget(env.dir, "c1/eth0");

  const r = await handlers.cmdAdd(makeArgs("ADD", "c1"));
  await t.step("the leftover veth pair is replaced", () => {
    const newMac = pod.link("eth0")?.mac;
    assert.ok(newMac !== undefined && newMac !== oldMac);
    assert.equal(r.interfaces?.[1]?.mac, newMac);
    assert.ok(kernel.hostNs.link(veth) !== undefined);
  });
  await t.step(
    "the stale rules for the address are gone, ours in place",
    () => {
      const newMac = pod.link("eth0")?.mac ?? "";
      const forIp = podRulesFor(rules, "10.0.0.5");
      assert.equal(forIp.length, 2, forIp.join("\n"));
      assert.ok(forIp.every((x) => x.includes(newMac)), forIp.join("\n"));
      assert.equal(kernel.hostNs.neighMac("azure0", "10.0.0.5"), newMac);
      // The veth has the same name: its anti-spoofing rules name the new
      // MAC, and none the old one (they would drop the new pod's frames).
      const spoof = spoofRulesOf(rules, veth);
      assert.equal(spoof.length, 5, spoof.join("\n"));
      assert.equal(
        spoof.filter((x) => x.includes(newMac)).length,
        2,
        spoof.join("\n"),
      );
      assert.ok(oldMac !== undefined);
      assert.ok(!spoof.some((x) => x.includes(oldMac)), spoof.join("\n"));
    },
  );
  await t.step("the endpoint is recorded once, the IP kept", async () => {
    assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
    assert.deepEqual([...env.ipam.held.values()], ["10.0.0.5"]);
  });
});

Deno.test("cmdAdd() replaces rules a lost DEL left for a reused address", async () => {
  await using env = await setup();
  const { handlers, kernel, pod, rules } = env;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  // DEL killed after the veth went, before the rules: the address is then
  // released (here by hand) and handed to another attachment.
  const veth = [...kernel.hostNs.linksByName.keys()].find((n) =>
    n.startsWith("azv")
  );
  kernel.hostNs.delLink(veth ?? "");
  await forget(env.dir, "c1/eth0");
  env.ipam.held.delete("c1/eth0");
  assert.equal(podRulesFor(rules, "10.0.0.5").length, 2);
  const c2 = await handlers.cmdAdd(makeArgs("ADD", "c2"));
  const mac = pod.link("eth0")?.mac ?? "";
  const forIp = podRulesFor(rules, "10.0.0.5");
  assert.equal(forIp.length, 2, forIp.join("\n"));
  assert.ok(forIp.every((x) => x.includes(mac)), forIp.join("\n"));
  assert.equal(spoofRulesOf(rules, c2.interfaces?.[0]?.name ?? "").length, 5);
  // The anti-spoofing rules of c1's veth match no frame any more (it is
  // gone); GC takes them, and keeps c2's.
  assert.equal(spoofRulesOf(rules, veth ?? "").length, 5);
  await handlers.cmdGc?.(gcArgs(["c2"]));
  assert.deepEqual(spoofRulesOf(rules, veth ?? ""), []);
  assert.equal(spoofRulesOf(rules, c2.interfaces?.[0]?.name ?? "").length, 5);
  assert.equal(podRulesFor(rules, "10.0.0.5").length, 2);
});

Deno.test("cmdAdd() still fails with 105 for a foreign ifname and keeps other veths", async () => {
  await using env = await setup();
  env.kernel.addNetns("/run/netns/pod2");
  await env.handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/pod2"));
  const before = [...env.kernel.hostNs.linksByName.keys()].sort();
  env.pod.addLink("eth0");
  await assert.rejects(env.handlers.cmdAdd(makeArgs("ADD", "c1")), {
    name: "CniError",
    code: 105,
    message: /"eth0" already exists/,
  });
  assert.deepEqual([...env.kernel.hostNs.linksByName.keys()].sort(), before);
  assert.ok(env.pod.link("eth0") !== undefined);
});

Deno.test("cmdDel() without a record deletes the derived veth and releases the IP", async () => {
  await using env = await setup();
  const { handlers, kernel, ipam, pod } = env;
  await handlers.cmdAdd(makeArgs("ADD", "c1"));
  await forget(env.dir, "c1/eth0");
  assert.ok(ipam.held.has("c1/eth0"));
  await handlers.cmdDel(makeArgs("DEL", "c1"));
  assert.ok(
    ![...kernel.hostNs.linksByName.keys()].some((n) => n.startsWith("azv")),
  );
  assert.deepEqual([...pod.linksByName.keys()], ["lo"]);
  assert.ok(!ipam.held.has("c1/eth0"));
  assert.deepEqual(await env.endpoints(), []);
  // Nothing left to do: a second DEL succeeds too.
  await handlers.cmdDel(makeArgs("DEL", "c1"));
});

Deno.test("cmdGc() removes stale records and the leftovers of killed ADDs", async (t) => {
  await using env = await setup();
  const { handlers, kernel, rules } = env;
  const veths = await addPods(env, ["c1", "c2", "c3", "c4"]);
  const hostRulesBefore = rules.rules.filter((r) =>
    !/10\.0\.0\.([5-9])\b|-i azv/.test(r.args)
  );
  // c3: ADD killed before its record; c4: recorded but not valid any more.
  await forget(env.dir, "c3/eth0");
  // Not ours: outside the subnet, on another master.
  rules.rules.push({
    chain: "PREROUTING",
    args:
      "-p IPv4 -i eth1 --ip-dst 10.0.0.99 -j dnat --to-dst 02:00:00:00:00:99 --dnat-target ACCEPT",
  });
  rules.rules.push({
    chain: "PREROUTING",
    args:
      "-p ARP --arp-op Request --arp-ip-dst 192.168.1.9 -j arpreply --arpreply-mac 02:00:00:00:00:99 --arpreply-target DROP",
  });
  rules.shortMacs = true;
  assert.ok(handlers.cmdGc !== undefined);
  await handlers.cmdGc(gcArgs(["c1", "c2"]));
  await t.step("records: the valid ones", async () => {
    assert.deepEqual((await env.endpoints()).sort(), ["c1/eth0", "c2/eth0"]);
  });
  await t.step("host veths: the recorded ones", async () => {
    const st = JSON.parse(await Deno.readTextFile(statePath(env.dir)));
    const want = Object.values(
      st.endpoints as Record<string, {
        hostVeth: string;
      }>,
    ).map((e) => e.hostVeth).sort();
    const have = [...kernel.hostNs.linksByName.keys()].filter((n) =>
      n.startsWith("azv")
    ).sort();
    assert.deepEqual(have, want);
    for (let i = 2; i < 4; i++) {
      assert.deepEqual(
        [
          ...(kernel.namespaces.get(`/run/netns/gc${i}`)?.linksByName.keys() ??
            []),
        ],
        ["lo"],
      );
    }
  });
  await t.step("rules: host rules, valid pods, foreign rules", () => {
    for (const ip of ["10.0.0.5", "10.0.0.6"]) {
      assert.equal(podRulesFor(rules, ip).length, 2, ip);
    }
    for (const ip of ["10.0.0.7", "10.0.0.8"]) {
      assert.equal(rules.matching(new RegExp(`${ip}\\b`)).length, 0, ip);
    }
    const spoof = veths.map((v) => spoofRulesOf(rules, v).length);
    assert.deepEqual(spoof, [5, 5, 0, 0]);
    for (const r of hostRulesBefore) {
      assert.ok(rules.rules.some((x) => x.args === r.args), r.args);
    }
    assert.equal(rules.matching(/10\.0\.0\.4\b/).length, 1);
    assert.equal(rules.matching(/10\.0\.0\.99|192\.168\.1\.9/).length, 2);
  });
  await t.step("neighbours: the valid pods'", () => {
    assert.deepEqual(
      kernel.hostNs.neighs("azure0").map((n) => n.ip).sort(),
      ["10.0.0.5", "10.0.0.6"],
    );
  });
});

Deno.test("GC through runPlugin() takes a null cni.dev/valid-attachments as none valid (libcni's nil slice)", async () => {
  await using env = await setup();
  const { handlers, ipam, kernel, rules } = env;
  await addPods(env, ["c1", "c2"]);
  const gc = await runThroughSkel(handlers, {
    name: "azure-vnet",
    env: { CNI_COMMAND: "GC", CNI_PATH: "/opt/cni/bin" },
    config: {
      ...makeArgs("GC", "").config,
      "cni.dev/valid-attachments": null,
      "cni.dev/attachments": null,
    },
  });
  assert.deepEqual(gc, { code: 0, stdout: "" });
  assert.deepEqual(await env.endpoints(), []);
  assert.deepEqual([...ipam.held.keys()], []);
  assert.ok(
    ![...kernel.hostNs.linksByName.keys()].some((n) => n.startsWith("azv")),
  );
  assert.deepEqual(rules.matching(/10\.0\.0\.[56]\b/), []);
});

Deno.test("cmdGc() keeps the record and address of an endpoint whose rules it could not remove", async () => {
  await using env = await setup();
  const { handlers, ipam, rules } = env;
  await addPods(env, ["c1", "c2"]);
  assert.equal(ipam.held.get("c2/eth0"), "10.0.0.6");
  assert.ok(handlers.cmdGc !== undefined);
  rules.failDel = /10\.0\.0\.6\b/;
  await assert.rejects(handlers.cmdGc(gcArgs(["c1"])), {
    name: "CniError",
    code: 104,
    message: /Cannot delete ebtables rule/,
  });
  assert.deepEqual((await env.endpoints()).sort(), ["c1/eth0", "c2/eth0"]);
  // Neither its release nor the IPAM's GC gave the address back.
  assert.equal(ipam.held.get("c2/eth0"), "10.0.0.6");
  assert.ok(!ipam.calls.includes("DEL c2"), ipam.calls.join(", "));
  rules.failDel = undefined;
  await handlers.cmdGc(gcArgs(["c1"]));
  assert.deepEqual(await env.endpoints(), ["c1/eth0"]);
  assert.ok(!ipam.held.has("c2/eth0"));
  assert.equal(rules.matching(/10\.0\.0\.6\b/).length, 0);
  assert.equal(ipam.held.get("c1/eth0"), "10.0.0.5");
});

Deno.test("cmdAdd() and STATUS put back host rules removed while the bridge stayed; STATUS fails with 51 only when it cannot", async (t) => {
  await using env = await setup();
  const { handlers, kernel, rules } = env;
  await addPods(env, ["c1"]);
  // Not the pods' rules, nor the anti-spoofing rules of their veths.
  const isHost = (r: { args: string }) =>
    !/10\.0\.0\.\d+\b|-i azv/.test(r.args) ||
    /--arp-ip-dst 10\.0\.0\.4\b/.test(r.args);
  const hostRules = rules.rules.filter(isHost);
  assert.equal(hostRules.length, 3, JSON.stringify(rules.rules));
  const status = makeArgs("STATUS", "", "");
  const check = makeArgs("CHECK", "c1", "/run/netns/gc0");
  const each = () =>
    rules.rules.filter(isHost).map((r) => `${r.chain} ${r.args}`).sort();
  const all = hostRules.map((r) => `${r.chain} ${r.args}`).sort();
  const cases: [string, (r: { chain: string; args: string }) => boolean][] = [
    ["the SNAT", (r) => r.chain === "POSTROUTING"],
    ["every host rule (a flushed table)", isHost],
  ];
  for (const [i, [what, gone]] of cases.entries()) {
    await t.step(`${what}: ADD puts it back`, async () => {
      rules.rules = rules.rules.filter((r) => !gone(r));
      await assert.rejects(handlers.cmdCheck?.(check) ?? Promise.resolve(), {
        name: "CniError",
        code: 106,
        message: /ebtables rule missing: POSTROUTING .*snat/,
      });
      const ns = `/run/netns/again${i}`;
      kernel.addNetns(ns);
      await handlers.cmdAdd(makeArgs("ADD", `again${i}`, ns));
      assert.deepEqual(each(), all, "each host rule once");
      await handlers.cmdCheck?.(check);
    });
    await t.step(`${what}: STATUS puts it back`, async () => {
      rules.rules = rules.rules.filter((r) => !gone(r));
      await handlers.cmdStatus?.(status);
      assert.deepEqual(each(), all, "each host rule once");
      await handlers.cmdCheck?.(check);
    });
  }
  await t.step("STATUS that cannot put it back: 51", async () => {
    rules.rules = rules.rules.filter((r) => r.chain !== "POSTROUTING");
    rules.failAdd = /snat/;
    await assert.rejects(handlers.cmdStatus?.(status) ?? Promise.resolve(), {
      name: "CniError",
      code: 51,
      message:
        /Network "azure" lost host ebtables rules and cannot put them back: POSTROUTING .*snat/,
    });
    rules.failAdd = undefined;
    await handlers.cmdStatus?.(status);
    assert.deepEqual(each(), all);
  });
});

Deno.test("cmdAdd() on a live network checks its host rules on the listing it takes anyway", async () => {
  await using env = await setup();
  const { handlers, kernel, rules } = env;
  await addPods(env, ["c1"]);
  const lists = rules.lists;
  const restores = rules.restores.length;
  kernel.addNetns("/run/netns/c2");
  await handlers.cmdAdd(makeArgs("ADD", "c2", "/run/netns/c2"));
  assert.equal(
    rules.lists - lists,
    1,
    "one listing, taken while IPAM reserves",
  );
  assert.equal(rules.restores.length - restores, 1, "one transaction: c2's");
});

Deno.test("cmdAdd() in bridge mode refuses an IPv6 address with 7 naming transparent mode, changing nothing", async () => {
  await using env = await setup();
  env.ipam.dualStack = true;
  await assert.rejects(env.handlers.cmdAdd(makeArgs("ADD", "c1")), {
    name: "CniError",
    code: 7,
    message:
      /Cannot attach IPv6 address "fd00::5\/64" in bridge mode: .*"mode": "transparent"/,
  });
  assert.equal(env.kernel.hostNs.link("azure0"), undefined);
  assert.deepEqual(env.kernel.hostNs.addrs("eth0").map((a) => a.cidr), [
    "10.0.0.4/24",
  ]);
  assert.equal(env.ipam.held.size, 0);
  assert.deepEqual(env.rules.rules, []);
});
