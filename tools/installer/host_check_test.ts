import assert from "node:assert/strict";
import { checkHost, hostLackMessage } from "./host_check.ts";

/**
 * Makes a fake node root in a temp dir: each entry is a file (`""`, or its
 * text) or, written `-> target`, a symlink (absolute targets mean the
 * node's root, as on the node).
 */
async function fakeRoot(entries: Record<string, string>): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "vnet-host-" });
  for (const [path, what] of Object.entries(entries)) {
    const at = `${root}${path}`;
    await Deno.mkdir(at.slice(0, at.lastIndexOf("/")), { recursive: true });
    if (what.startsWith("-> ")) await Deno.symlink(what.slice(3), at);
    else await Deno.writeTextFile(at, what);
  }
  return root;
}

/** A merged-/usr Debian 12 or Ubuntu node with all the plugins need. */
const DEBIAN: Record<string, string> = {
  "/lib": "-> usr/lib",
  "/lib64": "-> usr/lib64",
  "/usr/lib64/ld-linux-x86-64.so.2":
    "-> /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
  "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "",
  "/usr/lib/x86_64-linux-gnu/libc.so.6": "",
  "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1": "",
  "/usr/lib/x86_64-linux-gnu/libnl-3.so.200": "-> libnl-3.so.200.26.0",
  "/usr/lib/x86_64-linux-gnu/libnl-3.so.200.26.0": "",
  "/usr/lib/x86_64-linux-gnu/libnl-route-3.so.200":
    "-> libnl-route-3.so.200.26.0",
  "/usr/lib/x86_64-linux-gnu/libnl-route-3.so.200.26.0": "",
  // update-alternatives: absolute links through /etc.
  "/usr/sbin/ebtables": "-> /etc/alternatives/ebtables",
  "/etc/alternatives/ebtables": "-> /usr/sbin/ebtables-nft",
  "/usr/sbin/ebtables-nft": "-> xtables-nft-multi",
  "/usr/sbin/ebtables-restore": "-> /etc/alternatives/ebtables-restore",
  "/etc/alternatives/ebtables-restore": "-> /usr/sbin/ebtables-nft-restore",
  "/usr/sbin/ebtables-nft-restore": "-> xtables-nft-multi",
  "/usr/sbin/xtables-nft-multi": "",
};

/** An Azure Linux node: /usr/lib without multiarch, ebtables-legacy. */
const AZURE_LINUX: Record<string, string> = {
  "/lib": "-> usr/lib",
  "/lib64": "-> usr/lib",
  "/usr/lib/ld-linux-x86-64.so.2": "",
  "/usr/lib/libc.so.6": "",
  "/usr/lib/libgcc_s.so.1": "",
  "/usr/lib/libnl-3.so.200": "-> libnl-3.so.200.26.0",
  "/usr/lib/libnl-3.so.200.26.0": "",
  "/usr/lib/libnl-route-3.so.200": "-> libnl-route-3.so.200.26.0",
  "/usr/lib/libnl-route-3.so.200.26.0": "",
  "/usr/sbin/ebtables": "-> ebtables-legacy",
  "/usr/sbin/ebtables-legacy": "",
  "/usr/sbin/ebtables-restore": "-> ebtables-legacy-restore",
  "/usr/sbin/ebtables-legacy-restore": "",
};

function without(
  entries: Record<string, string>,
  ...gone: string[]
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(entries).filter(([p]) => !gone.some((g) => p.includes(g))),
  );
}

async function lacksOf(
  entries: Record<string, string>,
  arch = "x86_64",
): Promise<string[]> {
  const root = await fakeRoot(entries);
  try {
    return (await checkHost(root, { arch })).map((l) => l.name);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("checkHost() finds what Debian and Azure Linux nodes have, through their symlinks", async (t) => {
  await t.step("Debian, merged /usr, alternatives", async () => {
    assert.deepEqual(await lacksOf(DEBIAN), []);
  });
  await t.step("Azure Linux", async () => {
    assert.deepEqual(await lacksOf(AZURE_LINUX), []);
  });
  await t.step("libnl in a dir that ld.so.conf.d names", async () => {
    assert.deepEqual(
      await lacksOf({
        ...without(DEBIAN, "libnl"),
        "/etc/ld.so.conf": "include /etc/ld.so.conf.d/*.conf\n",
        "/etc/ld.so.conf.d/libnl.conf": "# vendor build\n/opt/libnl/lib\n",
        "/opt/libnl/lib/libnl-3.so.200": "",
        "/opt/libnl/lib/libnl-route-3.so.200": "",
      }),
      [],
    );
  });
  await t.step("an arm64 node's loader", async () => {
    const arm = Object.fromEntries(
      Object.entries(AZURE_LINUX).filter(([p]) => !p.includes("ld-linux")),
    );
    assert.deepEqual(await lacksOf(arm, "aarch64"), [
      "/lib/ld-linux-aarch64.so.1",
    ]);
    assert.deepEqual(
      await lacksOf(
        { ...arm, "/usr/lib/ld-linux-aarch64.so.1": "" },
        "aarch64",
      ),
      [],
    );
  });
});

Deno.test("checkHost() names what a node lacks, never looking outside its root", async (t) => {
  await t.step("no libnl, no ebtables (a minimal image)", async () => {
    assert.deepEqual(await lacksOf(without(DEBIAN, "libnl", "ebtables")), [
      "libnl-3.so.200",
      "libnl-route-3.so.200",
      "ebtables",
      "ebtables-restore",
    ]);
  });
  await t.step(
    "absolute links resolve in the node's root, not this machine's",
    async () => {
      // /etc/alternatives/ebtables-restore exists on this machine (it runs
      // the privileged tests), not on the node.
      assert.deepEqual(
        await lacksOf(without(DEBIAN, "/etc/alternatives/ebtables-restore")),
        ["ebtables-restore"],
      );
    },
  );
  await t.step("a dangling link, a directory, a link loop", async () => {
    assert.deepEqual(
      await lacksOf({
        ...without(DEBIAN, "libnl-3.so.200.26.0", "libnl-route", "libc.so"),
        "/usr/lib/x86_64-linux-gnu/libnl-route-3.so.200/x": "",
        "/usr/lib/x86_64-linux-gnu/libc.so.6": "-> libc.so.6",
      }),
      ["libnl-3.so.200", "libnl-route-3.so.200", "libc.so.6"],
    );
  });
  await t.step("no glibc (a musl node)", async () => {
    assert.deepEqual(
      await lacksOf(without(DEBIAN, "ld-linux", "libc.so", "libgcc")),
      ["libc.so.6", "libgcc_s.so.1", "/lib64/ld-linux-x86-64.so.2"],
    );
  });
  await t.step("a root that is no directory", async () => {
    await assert.rejects(checkHost("/nonexistent-vnet-root"), {
      name: "NotFound",
    });
  });
});

Deno.test("hostLackMessage() names the missing files and the packages of both distributions", () => {
  const msg = hostLackMessage([
    { name: "libnl-3.so.200", debian: "libnl-3-200", azureLinux: "libnl3" },
    {
      name: "libnl-route-3.so.200",
      debian: "libnl-route-3-200",
      azureLinux: "libnl3",
    },
    { name: "ebtables", debian: "ebtables", azureLinux: "ebtables-legacy" },
  ]);
  assert.match(
    msg,
    /^the node lacks libnl-3\.so\.200, libnl-route-3\.so\.200, ebtables, /,
  );
  assert.match(msg, /whenever the agent does not answer/);
  assert.match(
    msg,
    /Debian\/Ubuntu: apt-get install libnl-3-200 libnl-route-3-200 ebtables; Azure Linux: tdnf install libnl3 ebtables-legacy\)$/,
  );
});
