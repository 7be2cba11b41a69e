import assert from "node:assert/strict";
import { agentPlacement } from "./container.ts";

/** A link reader over a table; a missing entry throws as libc's would. */
function links(table: Record<string, string | Error>) {
  return (path: string): string | undefined => {
    const v = table[path];
    if (v instanceof Error) throw v;
    if (v === undefined) throw new Deno.errors.NotFound(`No "${path}"`);
    return v;
  };
}

Deno.test("agentPlacement() takes AZURE_VNET_AGENT_IN_CONTAINER as said, whatever /proc shows", async (t) => {
  const readLink = links({
    "/proc/self/ns/mnt": "mnt:[1]",
    "/proc/1/ns/mnt": "mnt:[1]",
  });
  for (
    const [value, inContainer] of [
      ["true", true],
      ["TRUE", true],
      [" false ", false],
    ] as const
  ) {
    await t.step(JSON.stringify(value), () => {
      const p = agentPlacement({ AZURE_VNET_AGENT_IN_CONTAINER: value }, {
        readLink,
      });
      assert.equal(p.inContainer, inContainer);
      assert.match(p.why, /^AZURE_VNET_AGENT_IN_CONTAINER=(true|false)$/);
    });
  }
  await t.step("another value stops the agent", () => {
    assert.throws(
      () =>
        agentPlacement({ AZURE_VNET_AGENT_IN_CONTAINER: "1" }, { readLink }),
      {
        name: "RangeError",
        message: /Invalid AZURE_VNET_AGENT_IN_CONTAINER "1": use true or false/,
      },
    );
  });
});

Deno.test("agentPlacement() unset: the host when PID 1 shares our mount namespace, else (or when it cannot tell) a container", async (t) => {
  await t.step("the same namespace: the host", () => {
    const p = agentPlacement({ AZURE_VNET_AGENT_IN_CONTAINER: "" }, {
      readLink: links({
        "/proc/self/ns/mnt": "mnt:[4026531841]",
        "/proc/1/ns/mnt": "mnt:[4026531841]",
      }),
    });
    assert.ok(!p.inContainer);
    assert.match(p.why, /PID 1's mount namespace is ours/);
  });
  await t.step("another namespace: a container", () => {
    const p = agentPlacement({}, {
      readLink: links({
        "/proc/self/ns/mnt": "mnt:[4026532001]",
        "/proc/1/ns/mnt": "mnt:[4026531841]",
      }),
    });
    assert.ok(p.inContainer);
    assert.match(p.why, /\(mnt:\[4026531841\]\) is not ours/);
  });
  await t.step("PID 1's namespace unreadable: a container", () => {
    const p = agentPlacement({}, {
      readLink: links({
        "/proc/self/ns/mnt": "mnt:[4026532001]",
        "/proc/1/ns/mnt": new Deno.errors.PermissionDenied("EACCES"),
      }),
    });
    assert.ok(p.inContainer);
    assert.match(p.why, /cannot be read \(EACCES\): taken for a container/);
  });
});

Deno.test("agentPlacement() reads this process's /proc through libc", {
  permissions: { ffi: true },
}, async () => {
  const { readLink } = await import("@vnet/netlink");
  // Whatever it says here, it says it without Deno's /proc refusal.
  const p = agentPlacement({}, { readLink });
  assert.equal(typeof p.inContainer, "boolean");
  assert.doesNotMatch(p.why, /allow-all|NotCapable/);
});
