import assert from "node:assert/strict";
import { type Document, LineCounter, parseDocument, visit } from "yaml";
import {
  localImage,
  memoryBytes,
  podmanRunArgs,
  readPodSpec,
} from "../image/daemonset.ts";

const ROOT = new URL("../../", import.meta.url);

/** The manifest, parsed as YAML 1.2; any parse error or warning fails. */
function loadManifest(): {
  doc: Document.Parsed;
  lines: LineCounter;
  text: string;
} {
  const lines = new LineCounter();
  const text = Deno.readTextFileSync(
    new URL("deploy/azure-vnet-daemonset.yaml", ROOT),
  );
  const doc = parseDocument(text, { lineCounter: lines });
  assert.deepEqual([...doc.errors, ...doc.warnings].map(String), []);
  return { doc, lines, text };
}

function at(obj: unknown, path: string): unknown {
  let cur = obj;
  for (const key of path.split(".")) {
    assert.ok(typeof cur === "object" && cur !== null, `missing ${path}`);
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

Deno.test("DaemonSet manifest is block-style YAML with the image's pod: init installer, the agent with its probes, privileges and mounts", async (t) => {
  const { doc, lines, text } = loadManifest();
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
  type Container = {
    name: string;
    image: string;
    command: string[];
    securityContext?: { privileged?: boolean };
    env?: { name: string; value?: string }[];
    livenessProbe?: Record<string, unknown>;
    readinessProbe?: Record<string, unknown>;
    resources?: {
      requests?: Record<string, string>;
      limits?: Record<string, string>;
    };
    volumeMounts: {
      name: string;
      mountPath: string;
      mountPropagation?: string;
      readOnly?: boolean;
    }[];
  };
  const init = (pod.initContainers ?? []) as Container[];
  const main = (pod.containers ?? []) as Container[];
  await t.step("host network and PID, tolerates every taint", () => {
    assert.ok(pod.hostNetwork === true);
    assert.ok(pod.hostPID === true);
    // The agent never talks to the API server.
    assert.ok(pod.automountServiceAccountToken === false);
    // Not ClusterFirstWithHostNet: CoreDNS needs this CNI to start.
    assert.equal(pod.dnsPolicy, "Default");
    const tol = pod.tolerations as Record<string, unknown>[];
    assert.ok(
      tol.some((x) =>
        x.operator === "Exists" && x.key === undefined &&
        x.effect === undefined
      ),
      "an Exists toleration without key and effect",
    );
  });
  await t.step(
    "an init container installs, one container runs the agent",
    () => {
      assert.deepEqual(init.map((c) => c.name), ["install-cni"]);
      assert.deepEqual(main.map((c) => c.name), ["azure-vnet"]);
      assert.deepEqual(init[0]?.command, ["/app/entrypoint.sh", "install"]);
      assert.deepEqual(main[0]?.command, ["/app/entrypoint.sh", "run"]);
      for (const c of [...init, ...main]) {
        assert.equal(c.image, "REPLACE_ME/azure-vnet-deno:0.1.0", c.name);
        assert.ok(c.securityContext?.privileged === true, c.name);
        assert.ok(c.resources?.requests?.memory !== undefined, c.name);
        assert.ok(c.resources?.limits?.memory !== undefined, c.name);
        // Agent and plugins find the socket and logs by the same defaults.
        for (const e of c.env ?? []) {
          assert.ok(!/^AZURE_VNET_(STATE|LOG)_DIR$/.test(e.name), e.name);
        }
      }
      // The agent's launcher grants the delegates of CNI_PATH at start; in
      // a container it hands delegate IPAM calls back to the plugin (their
      // state is the node's).
      assert.deepEqual(main[0]?.env, [
        { name: "CNI_PATH", value: "/opt/cni/bin" },
        { name: "AZURE_VNET_AGENT_IN_CONTAINER", value: "true" },
      ]);
      // The install checks the node's own libnl, ebtables and glibc (it
      // reaches the node's root as /proc/1/root: hostPID, checked above).
      assert.ok(
        init[0]?.env?.some((e) =>
          e.name === "AZURE_VNET_SKIP_HOST_CHECK" && e.value === "false"
        ),
        "AZURE_VNET_SKIP_HOST_CHECK false",
      );
      // The installer exits: a probe of it would prove nothing.
      assert.equal(init[0]?.livenessProbe, undefined);
      assert.equal(init[0]?.readinessProbe, undefined);
    },
  );
  await t.step(
    "the agent: probes that ask it, a grace period for its drain, memory for a burst",
    () => {
      const c = main[0];
      // Liveness: does it answer; readiness: also did its reconcile work
      // and do its ebtables match the node's.
      for (
        const [probe, extra] of [
          [c?.livenessProbe, []],
          [c?.readinessProbe, ["--ready"]],
        ] as const
      ) {
        assert.deepEqual(at(probe, "exec.command"), [
          "/opt/cni/bin/azure-vnet-agent",
          "probe",
          ...extra,
        ]);
        // The probe's own answer wait is 4 s (cni/agent/probe.ts).
        assert.ok(Number(at(probe, "timeoutSeconds")) >= 5);
      }
      // SIGTERM drains the requests in flight; a state-lock wait is <= 30 s.
      assert.ok(Number(pod.terminationGracePeriodSeconds) >= 45);
      // 308 MB RSS measured after a 250-burst (BENCHMARKS.md).
      const limit = Number(memoryBytes(c?.resources?.limits?.memory ?? "0"));
      assert.ok(limit >= 512 * 1024 ** 2, c?.resources?.limits?.memory);
    },
  );
  await t.step("the image tag is the plugins' version", async () => {
    const { default: meta } = await import(
      "../../cni/plugins/azure-vnet/deno.json",
      { with: { type: "json" } }
    );
    assert.equal(main[0]?.image.split(":")[1], meta.version);
  });
  await t.step(
    "every mount is a hostPath at the same path, but the agent config",
    () => {
      const vols = pod.volumes as {
        name: string;
        hostPath?: { path: string };
        configMap?: Record<string, unknown>;
      }[];
      const paths = (c: Container | undefined) =>
        (c?.volumeMounts ?? []).map((m) => m.mountPath).sort();
      assert.deepEqual(paths(init[0]), [
        "/etc/cni/net.d",
        "/opt/azure-vnet",
        "/opt/cni/bin",
        "/var/lib/azure-vnet",
      ]);
      assert.deepEqual(paths(main[0]), [
        "/etc/azure-vnet",
        "/etc/cni/net.d",
        "/opt/azure-vnet",
        "/opt/cni/bin",
        "/var/lib/azure-vnet",
        "/var/log",
        "/var/run",
        "/var/run/netns",
      ]);
      // The agent writes only its state, socket, logs and Deno cache.
      assert.deepEqual(
        (main[0]?.volumeMounts ?? []).filter((m) => m.readOnly !== true).map((
          m,
        ) => m.mountPath).sort(),
        ["/var/lib/azure-vnet", "/var/log", "/var/run", "/var/run/netns"],
      );
      // The agent's config: agent.json from an optional ConfigMap, so a
      // cluster without it gets every default.
      const config = vols.find((v) => v.name === "agent-config");
      assert.deepEqual(config?.configMap, {
        name: "azure-vnet-agent",
        optional: true,
      });
      assert.deepEqual(
        main[0]?.volumeMounts.find((m) => m.name === "agent-config"),
        { name: "agent-config", mountPath: "/etc/azure-vnet", readOnly: true },
      );
      for (const m of [...init, ...main].flatMap((c) => c.volumeMounts)) {
        const v = vols.find((x) => x.name === m.name);
        if (v === config) continue;
        assert.equal(v?.hostPath?.path, m.mountPath, m.name);
        // Pod namespaces are mounted after the agent starts, under
        // /var/run/netns or a runtime's state dir in /var/run.
        assert.equal(
          m.mountPropagation,
          m.mountPath.startsWith("/var/run") ? "HostToContainer" : undefined,
          m.name,
        );
      }
    },
  );
  await t.step("the pod translates to podman arguments", () => {
    const p = readPodSpec(text);
    const args = podmanRunArgs(p, "azure-vnet", {
      name: "x",
      image: localImage(main[0]?.image ?? ""),
      hostPath: (path) => path,
      hostNetwork: "host",
      configMap: (name) => `/tmp/configmaps/${name}`,
    });
    for (
      const a of [
        "--privileged",
        "/var/run/netns:/var/run/netns:rslave",
        "/var/run:/var/run:rslave",
        "/opt/azure-vnet:/opt/azure-vnet:ro,rprivate",
        "/tmp/configmaps/azure-vnet-agent:/etc/azure-vnet:ro,rprivate",
        "localhost/azure-vnet-deno:0.1.0",
        '["/opt/cni/bin/azure-vnet-agent","probe"]',
      ]
    ) {
      assert.ok(args.includes(a), a);
    }
    assert.equal(args[args.indexOf("--stop-timeout") + 1], "45");
    assert.equal(args[args.indexOf("--memory") + 1], String(512 * 1024 ** 2));
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
      // The agent goes to /opt/cni/bin (no --agent-dir), run() execs it.
      assert.doesNotMatch(sh, /--agent-dir/);
      assert.match(sh, /^ {2}agent=\/opt\/cni\/bin\/azure-vnet-agent$/m);
      assert.match(sh, /^ {2}exec "\$agent" serve$/m);
      assert.match(sh, /^ {2}install\) install ;;$/m);
      assert.match(sh, /^ {2}run\) run ;;$/m);
      assert.match(
        sh,
        /--host-root "\$\{AZURE_VNET_HOST_ROOT:-\/proc\/1\/root\}"/,
      );
      // Gives the node back what install replaced.
      assert.match(sh, /^ {2}uninstall\) uninstall ;;$/m);
      assert.match(
        sh,
        /^ {2}installer --uninstall --bin-dir \/opt\/cni\/bin$/m,
      );
    },
  );
});
