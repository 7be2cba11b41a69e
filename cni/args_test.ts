import assert from "node:assert/strict";
import { isIpOrCidr, parseCniArgs } from "./args.ts";

Deno.test("parseCniArgs() reads the Kubernetes and podman keys", () => {
  const a = parseCniArgs(
    "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=u;X=1;IP=10.0.0.5/24, fd00::5;MAC=C2:11:22:33:44:55",
  );
  assert.ok(a.ignoreUnknown);
  assert.equal(a.podNamespace, "ns");
  assert.equal(a.podName, "web");
  assert.equal(a.podInfraContainerId, "abc");
  assert.deepEqual(a.ips, ["10.0.0.5/24", "fd00::5"]);
  assert.equal(a.mac, "c2:11:22:33:44:55");
  assert.equal(a.all.get("X"), "1");
});

Deno.test("parseCniArgs() handles edge cases", async (t) => {
  await t.step("empty gives no args", () => {
    const a = parseCniArgs("");
    assert.equal(a.all.size, 0);
    assert.ok(!a.ignoreUnknown);
    assert.deepEqual(a.ips, []);
    assert.equal(a.podName, undefined);
  });
  await t.step("empty segments and a trailing ; are tolerated", () => {
    assert.equal(parseCniArgs("K8S_POD_NAME=a;;IP=1.2.3.4;").podName, "a");
  });
  await t.step("last value of a repeated key wins", () => {
    assert.equal(parseCniArgs("K8S_POD_NAME=a;K8S_POD_NAME=b").podName, "b");
  });
  await t.step("empty value is kept", () => {
    assert.equal(parseCniArgs("K8S_POD_NAME=").podName, "");
  });
  await t.step("IgnoreUnknown=false still rejects unknown keys", () => {
    assert.throws(() => parseCniArgs("IgnoreUnknown=false;FOO=bar"), {
      name: "CniError",
      code: 2,
    });
  });
  await t.step("extraKeys and the ignoreUnknown option allow keys", () => {
    assert.equal(
      parseCniArgs("FOO=1", { extraKeys: ["FOO"] }).all.get("FOO"),
      "1",
    );
    assert.equal(
      parseCniArgs("FOO=1", { ignoreUnknown: true }).all.get("FOO"),
      "1",
    );
  });
});

Deno.test("parseCniArgs() rejects malformed input", async (t) => {
  const cases: [string, number, RegExp][] = [
    ["FOO", 4, /pair "FOO" is not KEY=VALUE/],
    ["=1", 4, /pair "=1" is not KEY=VALUE/],
    ["A=1=2", 4, /pair "A=1=2" is not KEY=VALUE/],
    ["IgnoreUnknown=maybe", 4, /IgnoreUnknown "maybe" is not a boolean/],
    ["FOO=bar", 2, /Unsupported CNI_ARGS key "FOO" \(value "bar"\)/],
    ["IP=10.0.0.256", 4, /IP "10.0.0.256" is not an address/],
    ["IP=10.0.0.1,", 4, /IP "" is not an address/],
    ["IP=10.0.0.1/33", 4, /IP "10.0.0.1\/33"/],
    ["MAC=zz:11:22:33:44:55", 4, /MAC "zz:11:22:33:44:55"/],
  ];
  for (const [raw, code, message] of cases) {
    await t.step(raw, () => {
      assert.throws(() => parseCniArgs(raw), {
        name: "CniError",
        code,
        message,
      });
    });
  }
});

Deno.test("isIpOrCidr() accepts v4/v6 with optional prefix", () => {
  for (
    const ok of ["1.2.3.4", "1.2.3.4/0", "::1", "fd00::5/128", "::ffff:1.2.3.4"]
  ) {
    assert.ok(isIpOrCidr(ok), ok);
  }
  for (
    const bad of [
      "",
      "1.2.3",
      "01.2.3.4x",
      "fd00::5/129",
      "1.2.3.4/a",
      "a/b/c",
      "gg::1",
    ]
  ) {
    assert.ok(!isIpOrCidr(bad), bad);
  }
});
