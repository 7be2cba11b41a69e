import assert from "node:assert/strict";
import {
  cpus,
  manifestImage,
  memoryBytes,
  podmanRunArgs,
  probeCommand,
  readPodSpec,
} from "./daemonset.ts";

const POD = `
kind: DaemonSet
spec:
  template:
    spec:
      hostNetwork: true
      hostPID: true
      terminationGracePeriodSeconds: 7
      tolerations:
        - operator: Exists
      initContainers:
        - name: init
          image: REPLACE_ME/x:1
          command:
            - /e.sh
            - install
          env:
            - name: A
              value: "b c"
          securityContext:
            privileged: true
          resources:
            requests:
              memory: 1Mi
            limits:
              memory: 64Mi
              cpu: 250m
          volumeMounts:
            - name: bin
              mountPath: /opt/cni/bin
              readOnly: true
      containers:
        - name: main
          image: REPLACE_ME/x:1
          livenessProbe:
            exec:
              command:
                - /a
                - probe
            initialDelaySeconds: 30
            periodSeconds: 20
            timeoutSeconds: 5
          readinessProbe:
            exec:
              command:
                - /r
          volumeMounts:
            - name: netns
              mountPath: /var/run/netns
              mountPropagation: HostToContainer
      volumes:
        - name: bin
          hostPath:
            path: /opt/cni/bin
            type: DirectoryOrCreate
        - name: netns
          hostPath:
            path: /var/run/netns
`;

const OPTS = {
  image: "localhost/x:1",
  hostPath: (p: string) => `/r${p}`,
  hostNetwork: "ns:/var/run/netns/n1",
};

Deno.test("podmanRunArgs() translates every privilege, mount and limit", () => {
  const pod = readPodSpec(POD);
  assert.deepEqual(podmanRunArgs(pod, "init", { ...OPTS, name: "t-init" }), [
    ...["--pull", "never", "--name", "t-init"],
    ...["--network", "ns:/var/run/netns/n1", "--pid", "host", "--privileged"],
    ...["--stop-timeout", "7", "--memory", "67108864", "--cpus", "0.25"],
    ...["--volume", "/r/opt/cni/bin:/opt/cni/bin:ro,rprivate"],
    ...["--env", "A=b c", "--entrypoint", '["/e.sh","install"]'],
    "localhost/x:1",
  ]);
  const main = podmanRunArgs(pod, "main", { ...OPTS, name: "t-main" });
  assert.ok(!main.includes("--privileged"));
  const health = main.slice(main.indexOf("--health-cmd"));
  assert.deepEqual(health.slice(0, 12), [
    ...["--health-cmd", '["/a","probe"]', "--health-interval", "20s"],
    ...["--health-timeout", "5s", "--health-retries", "3"],
    ...["--health-start-period", "30s", "--health-on-failure", "restart"],
  ]);
  assert.ok(main.includes("/r/var/run/netns:/var/run/netns:rslave"));
  assert.ok(!main.includes("--entrypoint"));
});

Deno.test("probeCommand() gives an exec probe's command, undefined without one", () => {
  const pod = readPodSpec(POD);
  assert.deepEqual(
    probeCommand(pod, { container: "main", probe: "readinessProbe" }),
    ["/r"],
  );
  assert.equal(
    probeCommand(pod, { container: "init", probe: "livenessProbe" }),
    undefined,
  );
  assert.throws(
    () => probeCommand(pod, { container: "x", probe: "livenessProbe" }),
    { name: "RangeError" },
  );
});

Deno.test("readPodSpec() refuses what it cannot translate", async (t) => {
  const cases: [string, string, RegExp][] = [
    [
      "a startup probe",
      "          image: REPLACE_ME/x:1\n          startupProbe:\n            exec:\n              command:\n                - x",
      /"startupProbe"/,
    ],
    [
      "a capability",
      "          securityContext:\n            capabilities:\n              add:\n                - NET_ADMIN",
      /"capabilities"/,
    ],
    [
      "an env from a secret",
      "          env:\n            - name: A\n              valueFrom:\n                secretKeyRef:\n                  name: s",
      /"valueFrom"/,
    ],
  ];
  for (const [what, insert, message] of cases) {
    await t.step(what, () => {
      const text = POD.replace(
        "        - name: main\n          image: REPLACE_ME/x:1",
        `        - name: main\n${
          insert.startsWith("          image")
            ? ""
            : "          image: REPLACE_ME/x:1\n"
        }${insert}`,
      );
      assert.throws(() => readPodSpec(text), { name: "RangeError", message });
    });
  }
  for (
    const [what, from, to, message] of [
      [
        "an httpGet probe",
        "          readinessProbe:\n            exec:\n              command:\n                - /r\n",
        "          readinessProbe:\n            httpGet:\n              port: 80\n",
        /readinessProbe of "main".*"httpGet"/,
      ],
      [
        "a probe key",
        "            timeoutSeconds: 5\n",
        "            timeoutSeconds: 5\n            terminationGracePeriodSeconds: 5\n",
        /"terminationGracePeriodSeconds"/,
      ],
      [
        "a probe period that is no count",
        "            periodSeconds: 20\n",
        "            periodSeconds: 20s\n",
        /periodSeconds "20s"/,
      ],
    ] as const
  ) {
    await t.step(what, () => {
      assert.ok(POD.includes(from), what);
      assert.throws(() => readPodSpec(POD.replace(from, to)), {
        name: "RangeError",
        message,
      });
    });
  }
  await t.step("an unknown pod key", () => {
    const text = POD.replace("      hostPID: true", "      hostIPC: true");
    assert.throws(() => readPodSpec(text), {
      name: "RangeError",
      message: /"hostIPC"/,
    });
  });
  await t.step("a volume that is no hostPath", () => {
    const text = POD.replace(
      "          hostPath:\n            path: /var/run/netns\n",
      "          emptyDir: {}\n",
    );
    assert.throws(() => readPodSpec(text), {
      name: "RangeError",
      message: /only hostPath/,
    });
  });
  await t.step("a mount without its volume", () => {
    const pod = readPodSpec(
      POD.replace(
        "name: netns\n          hostPath",
        "name: other\n          hostPath",
      ),
    );
    assert.throws(() => podmanRunArgs(pod, "main", { ...OPTS, name: "m" }), {
      name: "RangeError",
      message: /no such volume/,
    });
  });
  await t.step("no DaemonSet", () => {
    assert.throws(() => readPodSpec("kind: Pod\n"), {
      name: "TypeError",
      message: /not a DaemonSet/,
    });
  });
});

Deno.test("readPodSpec() accepts what grants nothing on the node, and podmanRunArgs() mounts a ConfigMap read-only", async (t) => {
  const text = POD.replace(
    "      hostPID: true\n",
    [
      "      hostPID: true",
      "      serviceAccountName: azure-vnet",
      "      automountServiceAccountToken: false",
      "      affinity:",
      "        nodeAffinity: {}",
      "",
    ].join("\n"),
  ).replace(
    "          readinessProbe:\n",
    [
      "          ports:",
      "            - name: metrics",
      "              containerPort: 10091",
      "          readinessProbe:",
      "",
    ].join("\n"),
  ).replace(
    "              mountPropagation: HostToContainer\n",
    [
      "              mountPropagation: HostToContainer",
      "            - name: config",
      "              mountPath: /etc/azure-vnet",
      "",
    ].join("\n"),
  ) + [
    "        - name: config",
    "          configMap:",
    "            name: azure-vnet-agent",
    "            optional: true",
    "",
  ].join("\n");
  const pod = readPodSpec(text);
  await t.step("the ConfigMap's directory, read-only", () => {
    const args = podmanRunArgs(pod, "main", {
      ...OPTS,
      name: "m",
      configMap: (name) => name === "azure-vnet-agent" ? "/r/cm" : undefined,
    });
    assert.ok(
      args.includes("/r/cm:/etc/azure-vnet:ro,rprivate"),
      args.join(" "),
    );
    assert.ok(!args.some((a) => a.includes("10091")), "ports: nothing");
  });
  await t.step("no directory for it: refused", () => {
    assert.throws(() => podmanRunArgs(pod, "main", { ...OPTS, name: "m" }), {
      name: "RangeError",
      message: /no directory for ConfigMap "azure-vnet-agent"/,
    });
  });
  await t.step("ports without hostNetwork: refused (hostPort)", () => {
    assert.throws(
      () => readPodSpec(text.replace("      hostNetwork: true\n", "")),
      { name: "RangeError", message: /container "main".*"ports"/ },
    );
  });
  await t.step("a ConfigMap projected with items: refused", () => {
    assert.throws(
      () =>
        readPodSpec(
          text.replace(
            "            optional: true\n",
            "            optional: true\n            items:\n              - key: a\n                path: b\n",
          ),
        ),
      { name: "RangeError", message: /configMap of volume "config".*"items"/ },
    );
  });
  await t.step("a hostPath file: refused (not replayed)", () => {
    assert.throws(
      () =>
        readPodSpec(
          text.replace(
            "            path: /var/run/netns\n",
            "            path: /var/run/netns\n            type: FileOrCreate\n",
          ),
        ),
      { name: "RangeError", message: /hostPath type "FileOrCreate"/ },
    );
  });
});

Deno.test("manifestImage() reads the image of a manifest the translation refuses", () => {
  const text = POD.replace(
    "      hostPID: true",
    "      hostPID: true\n      hostIPC: true",
  );
  assert.throws(() => readPodSpec(text), { name: "RangeError" });
  assert.equal(manifestImage(text), "REPLACE_ME/x:1");
  assert.throws(() => manifestImage("kind: DaemonSet\n"), {
    name: "TypeError",
    message: /no DaemonSet container image/,
  });
});

Deno.test("memoryBytes() and cpus() convert Kubernetes quantities", () => {
  assert.equal(memoryBytes("32Mi"), String(32 * 1024 * 1024));
  assert.equal(memoryBytes("1G"), "1000000000");
  assert.equal(cpus("2"), "2");
  assert.throws(() => memoryBytes("1.5Gi"), {
    name: "RangeError",
    message: /memory/,
  });
  assert.throws(() => cpus("x"), { name: "RangeError", message: /cpu/ });
});
