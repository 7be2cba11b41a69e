import assert from "node:assert/strict";
import { useEmulatorIdentity } from "../../tests/_support/identity.ts";
import {
  addVm,
  emptyState,
  type Emulator,
  generateTls,
  startEmulator,
} from "../../tools/sandbox/emulator/mod.ts";
import {
  type ArmFront,
  isNicGet,
  isOperationPoll,
  startArmFront,
} from "./_arm_front.ts";
import {
  type ArmNic,
  ipConfigUpdateBody,
  type NicModel,
  openNic,
} from "./nic.ts";

const NIC: NicModel = {
  name: "nic0",
  ipConfigurations: [
    { name: "ipconfig1", primary: true, subnet: { id: "s" } },
    {
      name: "ipv6config1",
      primary: false,
      privateIPAddress: "fd00::4",
      privateIPAddressVersion: "IPv6",
      subnet: { id: "s" },
    },
    { name: "ipconfig3", primary: false, subnet: { id: "s" } },
  ],
};

Deno.test("ipConfigUpdateBody() keeps IPv4 sorted and IPv6 after it, in order", () => {
  const body = ipConfigUpdateBody(NIC, {
    add: ["ipconfig2"],
    addIpv6: ["ipv6config2"],
    remove: [],
  });
  assert.deepEqual(
    body.ipConfigurations?.map((c) => [c.name, c.privateIPAddressVersion]),
    [
      ["ipconfig1", undefined],
      ["ipconfig2", "IPv4"],
      ["ipconfig3", undefined],
      ["ipv6config1", "IPv6"],
      ["ipv6config2", "IPv6"],
    ],
  );
  assert.deepEqual(body.ipConfigurations?.[4], {
    name: "ipv6config2",
    privateIPAllocationMethod: "Dynamic",
    privateIPAddressVersion: "IPv6",
    subnet: { id: "s" },
    primary: false,
  });
});

Deno.test("ipConfigUpdateBody() removes IPv6 ipconfigs by name and adds none by default", () => {
  const body = ipConfigUpdateBody(NIC, { add: [], remove: ["ipv6config1"] });
  assert.deepEqual(body.ipConfigurations?.map((c) => c.name), [
    "ipconfig1",
    "ipconfig3",
  ]);
});

// Against the ARM emulator, through a front that records and injects by
// request (`_arm_front.ts`): the SDK code path over real HTTPS.

const tls = await generateTls({ removeOnUnload: true });
useEmulatorIdentity();

// The Azure SDK's node:https client keeps keep-alive sockets open after the
// calls finish, so the resource and op sanitizers are off for SDK tests.
const SDK_TEST = { sanitizeResources: false, sanitizeOps: false } as const;

interface ArmRig extends AsyncDisposable {
  emu: Emulator;
  front: ArmFront;
  /** Binds the emulated NIC as the warm pool does (SDK retries off). */
  open(): Promise<ArmNic>;
  /** The emulator's ipconfigs: name -> address ("" while allocating). */
  nic(): Map<string, string>;
}

async function armRig(
  spec: { ipConfigCount: number; prefix?: string },
): Promise<ArmRig> {
  const state = emptyState();
  const vm = addVm(state, {
    name: "vm0",
    ipConfigCount: spec.ipConfigCount,
    ...(spec.prefix === undefined ? {} : { subnet: { prefix: spec.prefix } }),
  });
  const emu = await startEmulator({ state, tls });
  Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", emu.httpUrl);
  const front = await startArmFront({ target: emu.httpsUrl, tls });
  return {
    emu,
    front,
    open: () =>
      openNic({
        nicId:
          `/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroupName}/providers/Microsoft.Network/networkInterfaces/${vm.nic.name}`,
        armEndpoint: front.url,
        caFile: tls.caFile,
        maxRetries: 0,
        pollIntervalMs: 10,
      }),
    nic() {
      return new Map(
        (emu.state.vms[0]?.nic.ipConfigurations ?? []).map((c) => [
          c.name,
          c.privateIPAddress ?? "",
        ]),
      );
    },
    async [Symbol.asyncDispose]() {
      await front[Symbol.asyncDispose]();
      await emu[Symbol.asyncDispose]();
    },
  };
}

Deno.test({
  name:
    "ArmNic.update() sends If-Match with the etag read, so a stale update is ArmConflictError and deletes nothing",
  ...SDK_TEST,
  async fn() {
    await using r = await armRig({ ipConfigCount: 3 });
    const mine = await r.open();
    const other = await r.open();
    const read = await mine.get();
    assert.equal(typeof read.etag, "string");
    // Another writer (the NIC tool, the portal) adds an ipconfig meanwhile.
    await other.update(await other.get(), { add: ["ipconfig4"], remove: [] });
    const theirs = r.nic().get("ipconfig4");
    assert.match(theirs ?? "", /^10\.240\./);
    await assert.rejects(
      mine.update(read, { add: ["ipconfig5"], remove: ["ipconfig3"] }),
      { name: "ArmConflictError", status: 412, message: /changed since/ },
    );
    assert.deepEqual(
      [...r.nic().keys()],
      ["ipconfig1", "ipconfig2", "ipconfig3", "ipconfig4"],
      "the other writer's ipconfig stays, nothing of the stale plan ran",
    );
    const puts = r.front.requests.filter((q) => q.method === "PUT");
    assert.equal(puts.length, 2);
    assert.equal(puts[1]?.ifMatch, read.etag, "If-Match on the wire");
    assert.equal(puts[1]?.status, 412);
    // Read again, plan again: the update lands and keeps ipconfig4.
    await mine.update(await mine.get(), { add: ["ipconfig5"], remove: [] });
    assert.equal(r.nic().get("ipconfig4"), theirs);
    assert.match(r.nic().get("ipconfig5") ?? "", /^10\.240\./);
  },
});

Deno.test({
  name:
    "ArmNic retries the reads an update depends on: its polls, and get({ retry: true })",
  ...SDK_TEST,
  async fn(t) {
    await using r = await armRig({ ipConfigCount: 2 });
    r.emu.setArm({ mode: "async", inProgressPolls: 2 });
    const nic = await r.open();
    await t.step("three failed polls after the PUT landed", async () => {
      r.front.fail({ match: isOperationPoll, count: 3, status: 503 });
      const updated = await nic.update(await nic.get(), {
        add: ["ipconfig3"],
        remove: [],
      });
      assert.match(
        updated.ipConfigurations?.at(-1)?.privateIPAddress ?? "",
        /^10\.240\./,
      );
      assert.equal(r.nic().get("ipconfig3"), "10.240.0.6");
    });
    await t.step("a GET that must get through", async () => {
      r.front.fail({ match: isNicGet, count: 1, status: 503 });
      await assert.rejects(nic.get(), { name: "RestError", statusCode: 503 });
      r.front.fail({ match: isNicGet, count: 3, status: 500 });
      assert.equal(
        (await nic.get({ retry: true })).ipConfigurations?.length,
        3,
      );
    });
  },
});

Deno.test({
  name:
    "ArmNic.update() throws ArmOperationError with ARM's code when ARM fails the operation",
  ...SDK_TEST,
  async fn() {
    // A /29 has 3 usable addresses, all taken: the new ipconfig gets none.
    await using r = await armRig({ ipConfigCount: 3, prefix: "10.240.0.0/29" });
    const nic = await r.open();
    await assert.rejects(
      nic.update(await nic.get(), { add: ["ipconfig4"], remove: [] }),
      {
        name: "ArmOperationError",
        code: "SubnetIsFull",
        message: /SubnetIsFull/,
      },
    );
    assert.deepEqual([...r.nic().keys()], [
      "ipconfig1",
      "ipconfig2",
      "ipconfig3",
    ]);
  },
});
