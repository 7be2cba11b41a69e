import assert from "node:assert/strict";
import * as z from "zod/mini";
import {
  decodeConfig,
  describeIssues,
  gcAttachments,
  parseNetConf,
} from "./config.ts";

function enc(o: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(o));
}

Deno.test("parseNetConf() keeps every key and defaults cniVersion", () => {
  const conf = parseNetConf(enc({
    name: "azure",
    type: "azure-vnet",
    mode: "bridge",
    ipam: { type: "azure-vnet-ipam", subnet: "10.0.0.0/16" },
    dns: { nameservers: ["168.63.129.16"] },
    runtimeConfig: {
      portMappings: [{ hostPort: 80 }],
      ips: ["10.0.0.5/24"],
      mac: "c2:11:22:33:44:55",
    },
    prevResult: { cniVersion: "1.0.0" },
    "cni.dev/valid-attachments": [{ containerID: "c1", ifname: "eth0" }],
  }));
  assert.equal(conf.cniVersion, "0.2.0");
  assert.equal(conf.mode, "bridge");
  assert.equal(conf.ipam?.subnet, "10.0.0.0/16");
  assert.deepEqual(conf.runtimeConfig, {
    portMappings: [{ hostPort: 80 }],
    ips: ["10.0.0.5/24"],
    mac: "c2:11:22:33:44:55",
  });
  assert.deepEqual(gcAttachments(conf), [{
    containerID: "c1",
    ifname: "eth0",
  }]);
});

Deno.test("gcAttachments() prefers valid-attachments and defaults to none", () => {
  const base = { cniVersion: "1.1.0", name: "n", type: "t" };
  assert.deepEqual(gcAttachments(base), []);
  assert.deepEqual(
    gcAttachments({
      ...base,
      "cni.dev/valid-attachments": [{ containerID: "a", ifname: "eth0" }],
      "cni.dev/attachments": [{ containerID: "b", ifname: "eth0" }],
    }),
    [{ containerID: "a", ifname: "eth0" }],
  );
});

Deno.test("gcAttachments() refuses a config without a list when required", () => {
  const base = { cniVersion: "1.1.0", name: "n", type: "t" };
  assert.throws(() => gcAttachments(base, { required: true }), {
    name: "CniError",
    code: 7,
    message: /GC needs cni\.dev\/valid-attachments/,
  });
  assert.deepEqual(
    gcAttachments({ ...base, "cni.dev/attachments": [] }, { required: true }),
    [],
  );
});

Deno.test("gcAttachments() reads a null list as an empty one, as libcni sends for a node with no valid pods", async (t) => {
  const base = { cniVersion: "1.1.0", name: "n", type: "t" };
  const cases: [string, Record<string, unknown>][] = [
    ["both keys null (libcni's nil slice)", {
      "cni.dev/valid-attachments": null,
      "cni.dev/attachments": null,
    }],
    ["valid-attachments null", { "cni.dev/valid-attachments": null }],
    ["the older key null", { "cni.dev/attachments": null }],
  ];
  for (const [what, keys] of cases) {
    await t.step(what, () => {
      const conf = parseNetConf(enc({ ...base, ...keys }));
      assert.deepEqual(gcAttachments(conf, { required: true }), []);
    });
  }
  await t.step("a list under the other key still counts", () => {
    const conf = parseNetConf(enc({
      ...base,
      "cni.dev/valid-attachments": null,
      "cni.dev/attachments": [{ containerID: "a", ifname: "eth0" }],
    }));
    assert.deepEqual(gcAttachments(conf, { required: true }), [
      { containerID: "a", ifname: "eth0" },
    ]);
  });
});

Deno.test("parseNetConf() names the field and the problem (code 7)", async (t) => {
  const ok = { cniVersion: "1.0.0", name: "azure", type: "azure-vnet" };
  const cases: [unknown, RegExp][] = [
    [{ type: "x" }, /field "name" is missing/],
    [
      { ...ok, name: "-bad" },
      /field "name" "-bad" must start with a letter or digit/,
    ],
    [{ ...ok, name: 5 }, /field "name" must be a string, found a number/],
    [{ ...ok, type: "" }, /field "type" must not be empty/],
    [{ ...ok, cniVersion: 1 }, /field "cniVersion" must be a string/],
    [{ ...ok, ipam: {} }, /field "ipam.type" is missing/],
    [{ ...ok, ipam: [] }, /field "ipam" must be an object, found a list/],
    [
      { ...ok, dns: { nameservers: "x" } },
      /field "dns.nameservers" must be a list/,
    ],
    [{ ...ok, runtimeConfig: 3 }, /field "runtimeConfig"/],
    [{ ...ok, prevResult: "x" }, /field "prevResult"/],
    [
      { ...ok, "cni.dev/valid-attachments": [{ containerID: "a" }] },
      /field "cni.dev\/valid-attachments\[0\].ifname" is missing/,
    ],
    [[1], /expected a JSON object, found a list/],
    [null, /expected a JSON object, found null/],
  ];
  for (const [input, message] of cases) {
    await t.step(JSON.stringify(input), () => {
      assert.throws(() => parseNetConf(enc(input)), {
        name: "CniError",
        code: 7,
        message,
      });
    });
  }
  await t.step("several problems in one message", () => {
    assert.throws(() => parseNetConf(enc({ cniVersion: "1.0.0" })), {
      name: "CniError",
      code: 7,
      message: /field "name" is missing; field "type" is missing/,
    });
  });
});

Deno.test("decodeConfig() gives code 6 for undecodable input", () => {
  for (
    const bad of [
      new Uint8Array([0xff, 0xfe]),
      new TextEncoder().encode("{"),
      new Uint8Array(),
    ]
  ) {
    assert.throws(() => decodeConfig(bad), {
      name: "CniError",
      code: 6,
      message: /Cannot decode network config: invalid JSON/,
    });
  }
});

Deno.test('describeIssues() spells out zod/mini\'s bare "Invalid input"', async (t) => {
  const schema = z.object({
    mode: z.optional(z.enum(["bridge", "tunnel"])),
    level: z.optional(z.literal("x")),
    interval: z.optional(z.union([z.string(), z.number()])),
  });
  const cases: [Record<string, unknown>, string][] = [
    [
      { mode: "mars" },
      'field "mode" must be one of "bridge", "tunnel", found "mars"',
    ],
    [{ level: "y" }, 'field "level" must be "x", found "y"'],
    [
      { interval: true },
      'field "interval" must be a string or a number, found a boolean',
    ],
  ];
  for (const [input, message] of cases) {
    await t.step(message, () => {
      const r = schema.safeParse(input);
      assert.ok(!r.success);
      assert.equal(describeIssues(r.error, input), message);
    });
  }
});
