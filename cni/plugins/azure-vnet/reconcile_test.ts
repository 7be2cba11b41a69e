import assert from "node:assert/strict";
import { IpamEngine, parseIpamConfig } from "@vnet/ipam";
import { FakeEbtables } from "./_fake_ebtables.ts";
import { FakeKernel } from "./_fake_kernel.ts";
import { Ebtables } from "./ebtables.ts";
import { arpReplyRule, podDnatRule, spoofRules } from "./ebtables_rules.ts";
import { LOCK_FILE_STALE_MS, reconcileState } from "./reconcile.ts";
import { ATTACHMENT_LOCK_DIR, withAttachmentLock } from "./attachment_lock.ts";
import { hostVethName } from "./names.ts";
import type { EndpointRecord, NetworkRecord } from "./state.ts";
import { TEST_NETWORK, testEndpoint } from "./_test_records.ts";
import { readState, withState } from "./state.ts";

const NET = TEST_NETWORK;

function ep(id: string, ip: string, mac: string): EndpointRecord {
  return testEndpoint({
    containerId: id,
    hostVeth: `azv${id}`,
    ip,
    mac,
    netns: `/run/netns/${id}`,
  });
}

/** The IPAM config of a static pool of `addresses` in 10.0.0.0/24. */
function staticConfig(addresses: string[]): ReturnType<typeof parseIpamConfig> {
  return parseIpamConfig({
    cniVersion: "1.1.0",
    name: "azure",
    type: "azure-vnet",
    ipam: {
      type: "azure-vnet-ipam",
      environment: "static",
      subnet: "10.0.0.0/24",
      addresses,
    },
  });
}

/**
 * A node with a live recorded pod (`live`, 10.0.0.5), a recorded pod whose
 * veth is gone (`gone`, 10.0.0.6), the kernel leftovers of an ADD killed
 * before its record (`left`, 10.0.0.7: veth, neighbour, rules, IPAM hold)
 * and a reservation of nobody (`ghost`).
 */
async function fixture(dir: string) {
  const kernel = new FakeKernel();
  const host = kernel.hostNs;
  host.addBridge({ name: "azure0", mtu: 1500, mac: NET.masterMac });
  host.addLink("eth0", { mac: NET.masterMac });
  host.setMaster("eth0", "azure0");
  // As earlier versions and the Go azure-vnet left it.
  host.setHairpin("eth0", { on: true });
  for (const v of ["azvlive", "azvleft"]) {
    host.addLink(v, { kind: "veth" });
    host.setMaster(v, "azure0");
  }
  const fake = new FakeEbtables();
  const ebtables = new Ebtables({ run: fake.run, restore: fake.restore });
  const pods = {
    live: { ip: "10.0.0.5", mac: "02:00:00:00:00:05" },
    gone: { ip: "10.0.0.6", mac: "02:00:00:00:00:06" },
    left: { ip: "10.0.0.7", mac: "02:00:00:00:00:07" },
  };
  for (const p of Object.values(pods)) {
    host.neighSet("azure0", p);
    await ebtables.ensureAll([arpReplyRule(p), podDnatRule("eth0", p)]);
  }
  await withState(dir, async (s) => {
    s.state.networks.azure = NET;
    s.state.endpoints["live/eth0"] = ep("live", pods.live.ip, pods.live.mac);
    s.state.endpoints["gone/eth0"] = ep("gone", pods.gone.ip, pods.gone.mac);
    await s.save();
  });
  const engine = new IpamEngine({ stateDir: dir, hostMacs: () => [] });
  for (const [id, ip] of Object.entries({ ...pods, ghost: "10.0.0.8" })) {
    await engine.reserve({ containerId: id, ifName: "eth0" }, {
      config: staticConfig(["10.0.0.5", "10.0.0.6", "10.0.0.7", "10.0.0.8"]),
      network: "azure",
      requestedIp: typeof ip === "string" ? ip : ip.ip,
    });
  }
  return { kernel, host, fake, ebtables, engine };
}

Deno.test("reconcileState() removes stale records and leftovers, never what a live record uses", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { kernel, host, fake, ebtables, engine } = await fixture(dir);
    const slept: number[] = [];
    const report = await reconcileState(dir, {
      kernel,
      ebtables,
      graceMs: 10,
      sleep: (ms) => Promise.resolve(void slept.push(ms)),
    });
    assert.ok(!report.failed, JSON.stringify(report));
    assert.deepEqual(slept, [10], "orphans are confirmed after the grace");
    assert.ok(host.linksByName.get("eth0")?.hairpin === false);
    assert.deepEqual(
      report.actions.map((a) => `${a.kind} ${a.target}: ${a.outcome}`),
      [
        "endpoint gone/eth0: removed (10.0.0.6/24)",
        "veth azvleft: deleted",
        // As listed: ebtables omits the default --arpreply-target DROP.
        "rule PREROUTING -p ARP --arp-op Request --arp-ip-dst 10.0.0.7 -j arpreply --arpreply-mac 02:00:00:00:00:07: deleted",
        "rule PREROUTING -p IPv4 -i eth0 --ip-dst 10.0.0.7 -j dnat --to-dst 02:00:00:00:00:07 --dnat-target ACCEPT: deleted",
        "neighbour 10.0.0.7 on azure0: deleted",
        "ipam 10.0.0.7 left/eth0: released",
        "ipam 10.0.0.8 ghost/eth0: released",
      ],
    );
    // The live pod keeps everything it uses.
    assert.ok(host.link("azvlive") !== undefined);
    assert.equal(host.link("azvleft"), undefined);
    assert.deepEqual(host.neighs("azure0").map((n) => n.ip), ["10.0.0.5"]);
    assert.equal(fake.matching(/10\.0\.0\.5\b/).length, 2);
    assert.equal(fake.matching(/10\.0\.0\.[678]\b/).length, 0);
    assert.deepEqual(
      await engine.held({ containerId: "live", ifName: "eth0" }),
      { ip: "10.0.0.5", subnet: "10.0.0.0/24", gateway: "10.0.0.1" },
    );
    for (const id of ["gone", "left", "ghost"]) {
      assert.equal(
        await engine.held({ containerId: id, ifName: "eth0" }),
        undefined,
        id,
      );
    }
    const again = await reconcileState(dir, {
      kernel,
      ebtables,
      graceMs: 0,
    });
    assert.deepEqual(again.actions, [], "a second run finds nothing");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() leaves an ADD that records its endpoint within the grace", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { kernel, host, ebtables, engine } = await fixture(dir);
    const report = await reconcileState(dir, {
      kernel,
      ebtables,
      graceMs: 10,
      // The ADD of "left" writes its record during the grace.
      sleep: () =>
        withState(dir, async (s) => {
          s.state.endpoints["left/eth0"] = ep(
            "left",
            "10.0.0.7",
            "02:00:00:00:00:07",
          );
          await s.save();
        }),
    });
    assert.deepEqual(
      report.actions.map((a) => `${a.kind} ${a.target}: ${a.outcome}`),
      [
        "endpoint gone/eth0: removed (10.0.0.6/24)",
        "ipam 10.0.0.8 ghost/eth0: released",
      ],
    );
    assert.ok(host.link("azvleft") !== undefined);
    assert.ok(
      (await engine.held({ containerId: "left", ifName: "eth0" })) !==
        undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() keeps the record and address of a stale endpoint whose rules it could not remove", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { kernel, fake, ebtables, engine } = await fixture(dir);
    fake.failDel = /10\.0\.0\.6\b/;
    const report = await reconcileState(dir, {
      kernel,
      ebtables,
      graceMs: 0,
    });
    assert.ok(report.failed);
    const gone = report.actions.find((a) => a.target === "gone/eth0");
    assert.equal(gone?.outcome, "failed");
    assert.match(gone?.error ?? "", /Cannot delete ebtables rule/);
    assert.deepEqual(
      await engine.held({ containerId: "gone", ifName: "eth0" }),
      { ip: "10.0.0.6", subnet: "10.0.0.0/24", gateway: "10.0.0.1" },
    );
    const state = JSON.parse(await Deno.readTextFile(`${dir}/azure-vnet.json`));
    assert.ok("gone/eth0" in state.endpoints);
    fake.failDel = undefined;
    const again = await reconcileState(dir, {
      kernel,
      ebtables,
      graceMs: 0,
    });
    assert.ok(!again.failed, JSON.stringify(again));
    assert.deepEqual(
      again.actions.map((a) => `${a.kind} ${a.target}: ${a.outcome}`),
      ["endpoint gone/eth0: removed (10.0.0.6/24)"],
    );
    assert.equal(
      await engine.held({ containerId: "gone", ifName: "eth0" }),
      undefined,
    );
    assert.equal(fake.matching(/10\.0\.0\.6\b/).length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() keeps a live endpoint whose netns path it cannot see", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The records' netns paths (/run/netns/<id>) do not exist here, as in
    // a debug container with the host's network but not its mounts.
    const { kernel, host, fake, ebtables, engine } = await fixture(dir);
    const report = await reconcileState(dir, { kernel, ebtables, graceMs: 0 });
    assert.ok(!report.failed, JSON.stringify(report));
    assert.deepEqual(
      report.actions.filter((a) => a.kind === "endpoint").map((a) =>
        `${a.target} (${a.reason}): ${a.outcome}`
      ),
      ["gone/eth0 (veth azvgone gone): removed (10.0.0.6/24)"],
    );
    const state = JSON.parse(await Deno.readTextFile(`${dir}/azure-vnet.json`));
    assert.deepEqual(Object.keys(state.endpoints), ["live/eth0"]);
    assert.ok(host.link("azvlive") !== undefined);
    assert.equal(host.neighMac("azure0", "10.0.0.5"), "02:00:00:00:00:05");
    assert.equal(fake.matching(/10\.0\.0\.5\b/).length, 2);
    assert.deepEqual(
      await engine.held({ containerId: "live", ifName: "eth0" }),
      { ip: "10.0.0.5", subnet: "10.0.0.0/24", gateway: "10.0.0.1" },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() refuses, changing nothing, where a recorded network's master NIC is not (another netns)", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    const { fake, ebtables } = await fixture(dir);
    // Another netns: none of the node's links, so every veth looks gone.
    const elsewhere = new FakeKernel();
    elsewhere.hostNs.addLink("eth0");
    const files = async () => [
      await Deno.readTextFile(`${dir}/azure-vnet.json`),
      await Deno.readTextFile(`${dir}/azure-vnet-ipam.json`),
      JSON.stringify(fake.rules),
    ];
    const before = await files();
    for (const dryRun of [true, false]) {
      await t.step(dryRun ? "dry run" : "gc", async () => {
        await assert.rejects(
          reconcileState(dir, {
            kernel: elsewhere,
            ebtables,
            graceMs: 0,
            dryRun,
          }),
          {
            name: "NotFound",
            message:
              /Cannot reconcile ".*": master "eth0" \(MAC .*\) of network "azure" is not in this network namespace/,
          },
        );
        assert.deepEqual(await files(), before);
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() with dryRun changes nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { kernel, host, fake, ebtables } = await fixture(dir);
    const before = await Deno.readTextFile(`${dir}/azure-vnet.json`);
    const rules = fake.rules.length;
    const report = await reconcileState(dir, {
      kernel,
      ebtables,
      dryRun: true,
    });
    assert.ok(report.actions.every((a) => a.outcome.startsWith("would")));
    assert.equal(report.actions.length, 7);
    assert.equal(await Deno.readTextFile(`${dir}/azure-vnet.json`), before);
    assert.ok(host.link("azvleft") !== undefined);
    assert.equal(fake.rules.length, rules);
    assert.ok(host.linksByName.get("eth0")?.hairpin);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() refuses a transparent network's state where its master NIC is not, changing nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const transparent: NetworkRecord = {
      name: "azure",
      mode: "transparent",
      master: "eth0",
      masterMac: NET.masterMac,
      masterMtu: 1500,
      subnet: "10.0.0.0/24",
      gateway: "10.0.0.1",
      createdAt: "",
      forwardingSet: false,
    };
    await withState(dir, async (s) => {
      s.state.networks.azure = transparent;
      s.state.endpoints["live/eth0"] = ep(
        "live",
        "10.0.0.5",
        "02:00:00:00:00:05",
      );
      await s.save();
    });
    const before = await Deno.readTextFile(`${dir}/azure-vnet.json`);
    // A debug container: an eth0 of its own, none of the node's veths.
    const elsewhere = new FakeKernel();
    elsewhere.hostNs.addLink("eth0");
    const fake = new FakeEbtables();
    await assert.rejects(
      reconcileState(dir, {
        kernel: elsewhere,
        ebtables: new Ebtables({ run: fake.run, restore: fake.restore }),
        graceMs: 0,
      }),
      { name: "NotFound", message: /is not in this network namespace/ },
    );
    assert.equal(await Deno.readTextFile(`${dir}/azure-vnet.json`), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() on a node that lost its bridge (a reboot) removes the records of the pods that went with it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { fake, ebtables } = await fixture(dir);
    // After the reboot: the NIC, with its MAC; no bridge, no veth, no rule.
    const rebooted = new FakeKernel();
    rebooted.hostNs.addLink("eth0", { mac: NET.masterMac });
    fake.rules = [];
    const report = await reconcileState(dir, {
      kernel: rebooted,
      ebtables,
      graceMs: 0,
    });
    assert.ok(!report.failed, JSON.stringify(report));
    const state = JSON.parse(await Deno.readTextFile(`${dir}/azure-vnet.json`));
    assert.deepEqual(Object.keys(state.endpoints), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() removes the anti-spoofing rules of a stale endpoint and of a leftover veth, not a live one's", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { kernel, host, fake, ebtables } = await fixture(dir);
    const pods = {
      azvlive: { podMac: "02:00:00:00:00:05", addresses: ["10.0.0.5/24"] },
      azvgone: { podMac: "02:00:00:00:00:06", addresses: ["10.0.0.6/24"] },
      azvleft: { podMac: "02:00:00:00:00:07", addresses: ["10.0.0.7/24"] },
    };
    await ebtables.ensureAll(
      Object.entries(pods).flatMap(([veth, pod]) => spoofRules(veth, pod)),
    );
    await withState(dir, async (s) => {
      for (const key of ["live/eth0", "gone/eth0"]) {
        const e = s.state.endpoints[key];
        if (e !== undefined) {
          s.state.endpoints[key] = { ...e, spoofCheck: true };
        }
      }
      await s.save();
    });
    const report = await reconcileState(dir, { kernel, ebtables, graceMs: 0 });
    assert.ok(!report.failed, JSON.stringify(report));
    const spoofActions = report.actions.filter((a) =>
      a.reason.startsWith("an anti-spoofing rule")
    );
    assert.equal(spoofActions.length, 5, JSON.stringify(report.actions));
    assert.ok(spoofActions.every((a) => a.target.includes("-i azvleft ")));
    const left = (veth: string) => fake.matching(new RegExp(`-i ${veth} `));
    assert.equal(left("azvlive").length, 5);
    assert.deepEqual(left("azvgone"), []);
    assert.deepEqual(left("azvleft"), []);
    assert.ok(host.link("azvlive") !== undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() leaves what an ADD at work holds however long it takes, and collects it once that ADD is gone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { kernel, host, fake, ebtables, engine } = await fixture(dir);
    // An ADD of "busy" past its veth, neighbour and rules, its record not
    // written yet (waiting on the state lock, say), holding its lock.
    const pod = { ip: "10.0.0.9", mac: "02:00:00:00:00:09" };
    const attachment = { containerId: "busy", ifName: "eth0" };
    const veth = await hostVethName("azure", attachment);
    host.addLink(veth, { kind: "veth" });
    host.setMaster(veth, "azure0");
    host.neighSet("azure0", pod);
    await ebtables.ensureAll([arpReplyRule(pod), podDnatRule("eth0", pod)]);
    await engine.reserve(attachment, {
      config: staticConfig([
        "10.0.0.5",
        "10.0.0.6",
        "10.0.0.7",
        "10.0.0.8",
        pod.ip,
      ]),
      network: "azure",
      requestedIp: pod.ip,
    });
    const atWork = { stateDir: dir, hostVeth: veth };
    const first = await withAttachmentLock(
      atWork,
      () => reconcileState(dir, { kernel, ebtables, graceMs: 0 }),
    );
    assert.ok(!first.failed, JSON.stringify(first));
    const outcomes = first.actions.map((a) =>
      `${a.kind} ${a.target}: ${a.outcome}`
    );
    assert.ok(
      outcomes.includes("ipam 10.0.0.9 busy/eth0: kept"),
      outcomes.join("\n"),
    );
    assert.ok(
      outcomes.includes("veth azvleft: deleted"),
      "the killed ADD's go",
    );
    assert.ok(outcomes.includes(`veth ${veth}: kept`), outcomes.join("\n"));
    assert.ok(
      first.actions.some((x) => x.target === veth && /at work/.test(x.reason)),
    );
    assert.ok(host.link(veth) !== undefined);
    // Rules and neighbours name no attachment: while one is at work, even
    // the killed ADD's are left for the next run.
    assert.ok(
      outcomes.includes("neighbour 10.0.0.7 on azure0: kept"),
      outcomes.join("\n"),
    );
    assert.deepEqual(host.neighs("azure0").map((n) => n.ip), [
      "10.0.0.5",
      "10.0.0.7",
      pod.ip,
    ]);
    assert.equal(fake.matching(/10\.0\.0\.9\b/).length, 2);
    assert.ok(await engine.held(attachment) !== undefined);
    const lockFile = `${dir}/${ATTACHMENT_LOCK_DIR}/${veth}.lock`;
    assert.ok((await Deno.stat(lockFile)).isFile);

    // The ADD was killed: its lock is free, and all it left goes. Its lock
    // file goes too once it is old (a fresh one may be an ADD's between
    // its open and its lock).
    const old = new Date(Date.now() - LOCK_FILE_STALE_MS - 1000);
    await Deno.utime(lockFile, old, old);
    const second = await reconcileState(dir, { kernel, ebtables, graceMs: 0 });
    assert.ok(!second.failed, JSON.stringify(second));
    assert.equal(host.link(veth), undefined);
    assert.deepEqual(host.neighs("azure0").map((n) => n.ip), ["10.0.0.5"]);
    assert.equal(fake.matching(/10\.0\.0\.[79]\b/).length, 0);
    assert.equal(await engine.held(attachment), undefined);
    // So does its lock file, its veth gone.
    await assert.rejects(Deno.stat(lockFile), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A node with the network and nothing else; `onList` runs at each listing. */
async function bareNode(
  dir: string,
  onList?: () => Promise<void>,
  onRestore?: () => Promise<void>,
) {
  const kernel = new FakeKernel();
  const host = kernel.hostNs;
  host.addBridge({ name: "azure0", mtu: 1500, mac: NET.masterMac });
  host.addLink("eth0", { mac: NET.masterMac });
  host.setMaster("eth0", "azure0");
  const fake = new FakeEbtables();
  const ebtables = new Ebtables({
    run: async (argv) => {
      if (argv.includes("-L")) await onList?.();
      return await fake.run(argv);
    },
    restore: async (input) => {
      await onRestore?.();
      return await fake.restore(input);
    },
  });
  await withState(dir, async (s) => {
    s.state.networks.azure = NET;
    await s.save();
  });
  const engine = new IpamEngine({ stateDir: dir, hostMacs: () => [] });
  return { kernel, host, fake, ebtables, engine };
}

const POD = { ip: "10.0.0.9", mac: "02:00:00:00:00:09" };

/**
 * What an ADD of `id` has made before its record: veth, neighbour, rules,
 * and (unless a delegate IPAM holds it) the reservation.
 */
async function plumbed(
  n: Awaited<ReturnType<typeof bareNode>>,
  spec: { id: string; reserve: boolean },
): Promise<string> {
  const attachment = { containerId: spec.id, ifName: "eth0" };
  const veth = await hostVethName("azure", attachment);
  n.host.addLink(veth, { kind: "veth" });
  n.host.setMaster(veth, "azure0");
  n.host.neighSet("azure0", POD);
  await n.ebtables.ensureAll([arpReplyRule(POD), podDnatRule("eth0", POD)]);
  if (spec.reserve) {
    await n.engine.reserve(attachment, {
      config: staticConfig([POD.ip]),
      network: "azure",
      requestedIp: POD.ip,
    });
  }
  return veth;
}

/** Records the endpoint of {@link POD} as `id`'s, on `hostVeth`. */
async function recordPod(
  dir: string,
  spec: { id: string; hostVeth: string },
): Promise<void> {
  await withState(dir, async (s) => {
    s.state.endpoints[`${spec.id}/eth0`] = testEndpoint({
      containerId: spec.id,
      hostVeth: spec.hostVeth,
      ip: POD.ip,
      mac: POD.mac,
      netns: `/run/netns/${spec.id}`,
    });
    await s.save();
  });
}

/** Holds an attachment's lock until `release()`. */
async function holdLock(stateDir: string, hostVeth: string) {
  let release = () => {};
  const gate = new Promise<void>((r) => release = r);
  let locked = () => {};
  const isLocked = new Promise<void>((r) => locked = r);
  const done = withAttachmentLock({ stateDir, hostVeth }, () => {
    locked();
    return gate;
  });
  await isLocked;
  return async () => {
    release();
    await done;
  };
}

Deno.test("reconcileState() keeps a stale record while an ADD of it is at work (re-attaching it)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const n = await bareNode(dir);
    const attachment = { containerId: "redo", ifName: "eth0" };
    const veth = await hostVethName("azure", attachment);
    await n.engine.reserve(attachment, {
      config: staticConfig([POD.ip]),
      network: "azure",
      requestedIp: POD.ip,
    });
    await recordPod(dir, { id: "redo", hostVeth: veth });
    const release = await holdLock(dir, veth);
    const r = await reconcileState(dir, { ...n, graceMs: 0 });
    await release();
    assert.deepEqual(
      r.actions.map((a) => `${a.kind} ${a.target}: ${a.outcome} (${a.reason})`),
      ["endpoint redo/eth0: kept (an ADD or DEL of it is at work)"],
    );
    assert.ok(await n.engine.held(attachment) !== undefined);
    assert.ok((await readState(dir)).endpoints["redo/eth0"] !== undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() keeps all an ADD at work made whose IPAM is a delegate (no reservation in our file)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const n = await bareNode(dir);
    const veth = await plumbed(n, { id: "exec", reserve: false });
    const release = await holdLock(dir, veth);
    const r = await reconcileState(dir, { ...n, graceMs: 0 });
    await release();
    assert.ok(!r.failed, JSON.stringify(r));
    assert.ok(r.actions.every((a) => a.outcome === "kept"), JSON.stringify(r));
    assert.ok(n.host.link(veth) !== undefined);
    assert.deepEqual(n.host.neighs("azure0").map((x) => x.ip), [POD.ip]);
    assert.equal(n.fake.matching(/10\.0\.0\.9\b/).length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() keeps what an ADD made that records itself and ends while the reconcile looks", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let finish: (() => Promise<void>) | undefined;
    const n = await bareNode(dir, async () => {
      const f = finish;
      finish = undefined;
      await f?.();
    });
    const veth = await plumbed(n, { id: "fin", reserve: true });
    const release = await holdLock(dir, veth);
    // During the reconcile's listing the ADD writes its record and ends.
    finish = async () => {
      await recordPod(dir, { id: "fin", hostVeth: veth });
      await release();
    };
    const r = await reconcileState(dir, { ...n, graceMs: 0 });
    assert.ok(!r.failed, JSON.stringify(r));
    assert.equal(finish, undefined, "the ADD ended during the look");
    assert.ok(n.host.link(veth) !== undefined, JSON.stringify(r.actions));
    assert.deepEqual(n.host.neighs("azure0").map((x) => x.ip), [POD.ip]);
    assert.equal(n.fake.matching(/10\.0\.0\.9\b/).length, 2);
    assert.ok(
      await n.engine.held({ containerId: "fin", ifName: "eth0" }) !==
        undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() keeps a dead attachment's address while its neighbour is kept (another ADD at work)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const n = await bareNode(dir);
    const dead = await plumbed(n, { id: "dead", reserve: true });
    n.host.delLinkSync(dead);
    const release = await holdLock(
      dir,
      await hostVethName("azure", { containerId: "other", ifName: "eth0" }),
    );
    const r = await reconcileState(dir, { ...n, graceMs: 0 });
    await release();
    const outcomes = r.actions.map((a) =>
      `${a.kind} ${a.target}: ${a.outcome}`
    );
    assert.ok(outcomes.includes("neighbour 10.0.0.9 on azure0: kept"));
    assert.ok(
      outcomes.includes("ipam 10.0.0.9 dead/eth0: kept"),
      outcomes.join("\n"),
    );
    assert.ok(
      await n.engine.held({ containerId: "dead", ifName: "eth0" }) !==
        undefined,
    );
    // With nobody at work, all of it goes.
    await reconcileState(dir, { ...n, graceMs: 0 });
    assert.deepEqual(n.host.neighs("azure0"), []);
    assert.equal(
      await n.engine.held({ containerId: "dead", ifName: "eth0" }),
      undefined,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() reports a neighbour a new pod took meanwhile as kept, and a veth that vanished under it as no failure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    let armed = false;
    const n: Awaited<ReturnType<typeof bareNode>> = await bareNode(
      dir,
      undefined,
      // A new pod's ADD takes the address while the rules go.
      () => {
        if (armed) {
          n.host.neighSet("azure0", { ...POD, mac: "02:00:00:00:00:99" });
        }
        return Promise.resolve();
      },
    );
    const veth = await plumbed(n, { id: "left", reserve: false });
    // Its ADD rolls back just as the reconcile deletes it.
    const delLinkSync = n.host.delLinkSync.bind(n.host);
    n.host.delLinkSync = (name) => {
      delLinkSync(name);
      throw new Deno.errors.NotFound(`no link "${name}"`);
    };
    armed = true;
    const r = await reconcileState(dir, { ...n, graceMs: 0 });
    assert.ok(!r.failed, JSON.stringify(r));
    assert.equal(n.host.link(veth), undefined);
    const outcomes = r.actions.map((a) =>
      `${a.kind} ${a.target}: ${a.outcome}`
    );
    assert.ok(
      outcomes.includes("neighbour 10.0.0.9 on azure0: kept"),
      outcomes.join("\n"),
    );
    assert.equal(n.host.neighMac("azure0", POD.ip), "02:00:00:00:00:99");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reconcileState() removes a veth's anti-spoofing rules only under its attachment's lock", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const n = await bareNode(dir);
    const veth = await hostVethName("azure", {
      containerId: "re",
      ifName: "eth0",
    });
    await n.ebtables.ensureAll(
      spoofRules(veth, { podMac: POD.mac, addresses: [`${POD.ip}/24`] }),
    );
    const count = () => n.fake.matching(new RegExp(`-i ${veth}\\b`)).length;
    const before = count();
    assert.ok(before >= 5);
    // A re-ADD of that attachment is at work: its rules may be the same.
    const release = await holdLock(dir, veth);
    const r = await reconcileState(dir, { ...n, graceMs: 0 });
    await release();
    assert.ok(r.actions.every((a) => a.outcome === "kept"), JSON.stringify(r));
    assert.equal(count(), before);
    await reconcileState(dir, { ...n, graceMs: 0 });
    assert.equal(count(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
