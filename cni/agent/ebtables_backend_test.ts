import assert from "node:assert/strict";
import { readLink } from "@vnet/netlink";
import {
  agentEbtables,
  compareEbtables,
  hostEbtables,
  resolveInRoot,
} from "./ebtables_backend.ts";

/**
 * A fake node root: `files` are created empty, `links` as symbolic links
 * (targets as given: absolute ones point into the node's root, not ours).
 */
async function fakeRoot(
  layout: { files?: string[]; dirs?: string[]; links?: Record<string, string> },
): Promise<string> {
  const root = await Deno.makeTempDir();
  for (const d of layout.dirs ?? []) {
    await Deno.mkdir(`${root}${d}`, { recursive: true });
  }
  for (const f of layout.files ?? []) {
    await Deno.mkdir(`${root}${f.slice(0, f.lastIndexOf("/"))}`, {
      recursive: true,
    });
    await Deno.writeTextFile(`${root}${f}`, "");
  }
  for (const [link, target] of Object.entries(layout.links ?? {})) {
    await Deno.mkdir(`${root}${link.slice(0, link.lastIndexOf("/"))}`, {
      recursive: true,
    });
    await Deno.symlink(target, `${root}${link}`);
  }
  return root;
}

Deno.test("hostEbtables() tells the node's backend from the names its ebtables links resolve through, inside the node's root", async (t) => {
  const cases: {
    name: string;
    layout: Parameters<typeof fakeRoot>[0];
    backend: "nft" | "legacy" | undefined;
    evidence: RegExp;
  }[] = [
    {
      name: "Debian's alternatives on ebtables-nft",
      layout: {
        files: ["/usr/sbin/xtables-nft-multi"],
        links: {
          "/usr/sbin/ebtables": "/etc/alternatives/ebtables",
          "/etc/alternatives/ebtables": "/usr/sbin/ebtables-nft",
          "/usr/sbin/ebtables-nft": "xtables-nft-multi",
        },
      },
      backend: "nft",
      evidence:
        /^\/usr\/sbin\/ebtables -> \/etc\/alternatives\/ebtables -> \/usr\/sbin\/ebtables-nft -> \/usr\/sbin\/xtables-nft-multi in "/,
    },
    {
      // This machine's own /etc/alternatives may say nft: the link is read
      // in the node's root, never in ours.
      name: "Debian's alternatives on ebtables-legacy",
      layout: {
        files: ["/usr/sbin/ebtables-legacy"],
        links: {
          "/usr/sbin/ebtables": "/etc/alternatives/ebtables",
          "/etc/alternatives/ebtables": "/usr/sbin/ebtables-legacy",
        },
      },
      backend: "legacy",
      evidence: /-> \/usr\/sbin\/ebtables-legacy in /,
    },
    {
      name:
        "a relative target that climbs past the root, legacy multi-call binary",
      layout: {
        files: ["/usr/bin/xtables-legacy-multi"],
        links: {
          "/usr/sbin/ebtables": "../../../../../usr/bin/xtables-legacy-multi",
        },
      },
      backend: "legacy",
      evidence: /^\/usr\/sbin\/ebtables -> \/usr\/bin\/xtables-legacy-multi/,
    },
    {
      name: "merged /usr: none in /usr/sbin, /sbin a link to it, /usr/bin's",
      layout: {
        dirs: ["/usr/sbin"],
        files: ["/usr/bin/ebtables-nft"],
        links: { "/sbin": "usr/sbin", "/usr/bin/ebtables": "ebtables-nft" },
      },
      backend: "nft",
      evidence: /^\/usr\/bin\/ebtables -> \/usr\/bin\/ebtables-nft in /,
    },
    {
      name: "a program that is no link says nothing",
      layout: { files: ["/sbin/ebtables"] },
      backend: undefined,
      evidence: /^\/sbin\/ebtables in ".*": no name says nft or legacy$/,
    },
    {
      name: "no ebtables",
      layout: { dirs: ["/usr/sbin"] },
      backend: undefined,
      evidence: /^no ebtables in \/usr\/sbin, \/sbin, \/usr\/bin, \/bin of "/,
    },
    {
      name: "a loop",
      layout: {
        links: {
          "/usr/sbin/ebtables": "ebtables2",
          "/usr/sbin/ebtables2": "ebtables",
        },
      },
      backend: undefined,
      evidence: /more than 40 links/,
    },
  ];
  for (const c of cases) {
    await t.step(c.name, async () => {
      const root = await fakeRoot(c.layout);
      try {
        const found = hostEbtables(root, { readLink });
        assert.equal(found.backend, c.backend, found.evidence);
        assert.match(found.evidence, c.evidence);
      } finally {
        await Deno.remove(root, { recursive: true });
      }
    });
  }
  await t.step(
    "a root it may not read (another PID namespace's /proc/1)",
    () => {
      const found = hostEbtables("/proc/1/root", {
        readLink: (p) => {
          throw new Deno.errors.PermissionDenied(`Cannot readlink "${p}"`);
        },
      });
      assert.equal(found.backend, undefined);
      assert.match(
        found.evidence,
        /^cannot read "\/usr\/sbin\/ebtables" in "\/proc\/1\/root": Cannot readlink/,
      );
    },
  );
});

Deno.test("resolveInRoot() never leaves the root: absolute targets and .. stay inside it", async () => {
  const root = await fakeRoot({
    files: ["/etc/hostname-of-node"],
    links: { "/a/b": "/../../etc/hostname-of-node" },
  });
  try {
    assert.deepEqual(resolveInRoot(root, "/a/b", { readLink }), {
      path: "/etc/hostname-of-node",
      links: ["/a/b -> /../../etc/hostname-of-node"],
    });
    assert.throws(() => resolveInRoot(root, "/etc/hostname", { readLink }), {
      name: "NotFound",
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("agentEbtables() runs the first ebtables of the plugins' dirs with --version", async (t) => {
  const version = (out: Record<string, { code: number; stdout: string }>) =>
  (
    path: string,
  ) => {
    const o = out[path];
    return o === undefined
      ? Promise.reject(new Deno.errors.NotFound(path))
      : Promise.resolve(o);
  };
  await t.step("nf_tables, in /sbin", async () => {
    const found = await agentEbtables({
      run: version({
        "/sbin/ebtables": { code: 0, stdout: "ebtables 1.8.9 (nf_tables)\n" },
      }),
    });
    assert.deepEqual(found, {
      backend: "nft",
      evidence: '"/sbin/ebtables --version": ebtables 1.8.9 (nf_tables)',
    });
  });
  await t.step("legacy", async () => {
    const found = await agentEbtables({
      run: version({
        "/usr/sbin/ebtables": {
          code: 0,
          stdout: "ebtables v2.0.11 (legacy) (December 2011)\n",
        },
      }),
    });
    assert.equal(found.backend, "legacy");
  });
  await t.step("a failure or no ebtables says nothing", async () => {
    const failed = await agentEbtables({
      run: version({ "/usr/sbin/ebtables": { code: 1, stdout: "" } }),
    });
    assert.equal(failed.backend, undefined);
    assert.match(failed.evidence, /said "" \(exit 1\)/);
    const none = await agentEbtables({ run: version({}) });
    assert.equal(none.backend, undefined);
    assert.match(none.evidence, /^no ebtables in \/usr\/sbin, /);
    const refused = await agentEbtables({
      run: () => Promise.reject(new Deno.errors.NotCapable("no --allow-run")),
    });
    assert.match(
      refused.evidence,
      /cannot run "\/usr\/sbin\/ebtables --version": no --allow-run/,
    );
  });
});

Deno.test("compareEbtables() finds a mismatch only when both backends are known", () => {
  const nft = { backend: "nft" as const, evidence: "n" };
  const legacy = { backend: "legacy" as const, evidence: "l" };
  const unknown = { evidence: "u" };
  assert.deepEqual(compareEbtables(nft, nft), { same: "nft" });
  assert.deepEqual(compareEbtables(legacy, nft), {
    mismatch: "the node's ebtables is legacy (l) but the agent's is nft (n)",
  });
  assert.deepEqual(compareEbtables(unknown, nft), {
    unknown: "the node's ebtables backend is unknown (u), the agent's nft (n)",
  });
  assert.ok(compareEbtables(legacy, unknown).unknown !== undefined);
});
