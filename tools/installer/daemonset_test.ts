import assert from "node:assert/strict";
import { type Document, LineCounter, parseDocument, visit } from "yaml";

const ROOT = new URL("../../", import.meta.url);

/** The manifest, parsed as YAML 1.2; any parse error or warning fails. */
function loadManifest(): { doc: Document.Parsed; lines: LineCounter } {
  const lines = new LineCounter();
  const doc = parseDocument(
    Deno.readTextFileSync(new URL("deploy/azure-vnet-daemonset.yaml", ROOT)),
    { lineCounter: lines },
  );
  assert.deepEqual([...doc.errors, ...doc.warnings].map(String), []);
  return { doc, lines };
}

function at(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const key of path.split(".")) {
    assert.ok(typeof cur === "object" && cur !== null, `missing ${path}`);
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

Deno.test("DaemonSet manifest is block-style YAML with the installer's structure", async (t) => {
  const { doc, lines } = loadManifest();
  const ds = doc.toJS() as Record<string, unknown>;
  await t.step("every mapping and sequence is in block style", () => {
    const flow: string[] = [];
    visit(doc, {
      Collection(_key, node) {
        if (node.flow === true) {
          flow.push(`line ${lines.linePos(node.range?.[0] ?? 0).line}`);
        }
      },
    });
    assert.deepEqual(flow, []);
  });
  await t.step("kind and selector match the pod labels", () => {
    assert.equal(ds.apiVersion, "apps/v1");
    assert.equal(ds.kind, "DaemonSet");
    assert.deepEqual(
      at(ds, "spec.selector.matchLabels"),
      at(ds, "spec.template.metadata.labels"),
    );
  });
  const pod = at(ds, "spec.template.spec") as Record<string, unknown>;
  await t.step("host network, privileged, tolerates every taint", () => {
    assert.ok(pod.hostNetwork === true);
    const tol = pod.tolerations as { operator: string; effect?: string }[];
    assert.ok(
      tol.some((x) => x.operator === "Exists" && x.effect === "NoSchedule"),
    );
    assert.ok(
      tol.some((x) => x.operator === "Exists" && x.effect === "NoExecute"),
    );
    const c = (pod.containers as Record<string, unknown>[])[0] ?? {};
    assert.ok(at(c, "securityContext.privileged") === true);
    assert.match(String(c.image), /^REPLACE_ME\//);
    assert.deepEqual(c.command, ["/app/tools/installer/entrypoint.sh"]);
  });
  await t.step("every mount is a hostPath at the same path", () => {
    const c = (pod.containers as Record<string, unknown>[])[0] ?? {};
    const mounts = c.volumeMounts as { name: string; mountPath: string }[];
    const vols = pod.volumes as { name: string; hostPath?: { path: string } }[];
    const paths = mounts.map((m) => m.mountPath).sort();
    assert.deepEqual(paths, [
      "/etc/cni/net.d",
      "/opt/azure-vnet",
      "/opt/cni/bin",
      "/var/lib/azure-vnet",
    ]);
    for (const m of mounts) {
      const v = vols.find((x) => x.name === m.name);
      assert.equal(v?.hostPath?.path, m.mountPath, m.name);
    }
  });
  await t.step(
    "the entrypoint exists, is executable and installs into the mounts",
    () => {
      const url = new URL("tools/installer/entrypoint.sh", ROOT);
      assert.equal((Deno.statSync(url).mode ?? 0) & 0o111, 0o111);
      const sh = Deno.readTextFileSync(url);
      assert.match(sh, /^#!\/bin\/sh\n/);
      assert.match(
        sh,
        /--bin-dir \/opt\/cni\/bin --conf-dir \/etc\/cni\/net\.d/,
      );
      assert.match(sh, /\/opt\/azure-vnet\/deno/);
    },
  );
});
