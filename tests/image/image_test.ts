/**
 * The DaemonSet image end to end (`deno task test:image`, which builds the
 * image first): the manifest's pod run under podman against an emulated
 * node, with the privileges, namespaces and mounts translated from
 * deploy/azure-vnet-daemonset.yaml by tools/image/daemonset.ts (never
 * written here).
 *
 * The node: the testbed's AzureNode (node netns = the pod's host network)
 * and a temporary root holding the node's hostPath directories. Inside this
 * test's private mount namespace (tests/_support/run_privileged.sh) the
 * root's /opt and /var/lib/azure-vnet are also bound at those paths, so the
 * launchers' absolute paths (/opt/azure-vnet/deno, the DENO_DIR) reach the
 * node's files, as on a real node. The node's /var/run/netns is this
 * machine's (the wrapper's private tmpfs), where the node and pod netns are.
 *
 * The long-running container is the node agent (`azure-vnet-agent serve`):
 * the plugins on the node forward to it through the node's
 * /var/run/azure-vnet-agent.sock (here the root's var/run, the same file
 * inside and out), and run in process once it is stopped.
 */
import assert from "node:assert/strict";
import { requireRoot } from "../_support/privilege.ts";
import {
  AzureNode,
  type Netns,
  type ProcessRun,
  resultIp,
  spawnProcess,
} from "../../tools/testbed/mod.ts";
import {
  DAEMONSET_PATH,
  directoriesToCreate,
  localImage,
  podmanRunArgs,
  type PodSpec,
  probeCommand,
  readPodSpec,
} from "../../tools/image/daemonset.ts";
import { NODE_DENO_PATH } from "../../tools/image/image.ts";
import { DEFAULT_DENO_DIR } from "../../tools/build/targets.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const NETNS_DIR = "/var/run/netns";
/** The Go plugin's binary, found on the node by the install. */
const GO_PLUGIN = "#!/bin/sh\n# the Go azure-vnet\n";

function cmd(program: string, args: readonly string[]): Promise<ProcessRun> {
  return spawnProcess([program, ...args]).done;
}

async function must(program: string, args: readonly string[]): Promise<string> {
  const r = await cmd(program, args);
  assert.equal(r.code, 0, `${program} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Flags this machine needs that are no privilege of the pod: podman's
 * default rlimits cannot be set here (no CAP_SYS_RESOURCE to raise them),
 * so the container keeps this process's nofile and a lower nproc; crun
 * refuses this machine's hybrid cgroup layout, runc accepts it.
 */
function machineFlags(): string[] {
  const limits = Deno.readTextFileSync("/proc/self/limits");
  const nofile = /Max open files\s+(\d+)\s+(\d+)/.exec(limits);
  return [
    ...["--runtime", "runc", "--ulimit", "nproc=4096:4096"],
    ...(nofile === null
      ? []
      : ["--ulimit", `nofile=${nofile[1]}:${nofile[2]}`]),
  ];
}

/** Binds `src` at `dst` (made when missing) in this mount namespace. */
async function bind(
  stack: AsyncDisposableStack,
  src: string,
  dst: string,
): Promise<void> {
  let made = false;
  try {
    await Deno.stat(dst);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    await Deno.mkdir(dst, { recursive: true });
    made = true;
  }
  if (made) stack.defer(() => Deno.remove(dst).catch(() => {}));
  await must("mount", ["--bind", src, dst]);
  stack.defer(async () => void await cmd("umount", ["-l", dst]));
}

/** The lines of the agent's log that record a served `ADD`. */
async function servedAdds(logDir: string): Promise<string[]> {
  const text = await Deno.readTextFile(`${logDir}/azure-vnet-agent.log`)
    .catch(() => "");
  return text.split("\n").filter((l) =>
    l.includes('served "azure-vnet" "ADD"')
  );
}

/**
 * Writes a ConfigMap's keys as the kubelet projects them into a volume:
 * each key a symlink through `..data` to a timestamped dir holding the
 * files (swapped atomically on an update).
 */
async function projectConfigMap(
  dir: string,
  data: Record<string, string>,
): Promise<void> {
  const stamp = "..2026_01_01_00_00_00.000000001";
  await Deno.mkdir(`${dir}/${stamp}`, { recursive: true });
  await Deno.symlink(stamp, `${dir}/..data`);
  for (const [key, text] of Object.entries(data)) {
    await Deno.writeTextFile(`${dir}/${stamp}/${key}`, text);
    await Deno.symlink(`..data/${key}`, `${dir}/${key}`);
  }
}

function dirName(path: string): string {
  return path.slice(0, path.lastIndexOf("/"));
}

function exists(path: string): Promise<boolean> {
  return Deno.lstat(path).then(() => true, (err) => {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  });
}

Deno.test("the DaemonSet image installs onto a node, its agent serves the pods, and they survive the container", async (t) => {
  requireRoot();
  assert.equal(
    Deno.env.get("VNET_IN_TEST_NETNS"),
    "1",
    "run through tests/_support/run_privileged.sh (deno task test:image): this test binds over /opt",
  );
  const pod = readPodSpec(await Deno.readTextFile(`${ROOT}${DAEMONSET_PATH}`));
  const image = localImage(pod.containers[0]?.image ?? "");
  assert.equal(
    (await cmd("podman", ["image", "exists", image])).code,
    0,
    `no image ${image}: run \`deno task image\` first`,
  );

  await using stack = new AsyncDisposableStack();
  const prefix = `azvimg-${crypto.randomUUID().slice(0, 6)}`;
  const root = await Deno.makeTempDir({ prefix: `${prefix}-root-` });
  stack.defer(() => Deno.remove(root, { recursive: true }));
  const nodePath = (p: string) => p === NETNS_DIR ? p : `${root}${p}`;
  // What the kubelet does for hostPath volumes; Directory ones exist on a
  // node (/var/run, /var/log), so the temp root gets them too.
  for (const v of pod.volumes ?? []) {
    if (v.hostPath === undefined) continue;
    await Deno.mkdir(nodePath(v.hostPath.path), { recursive: true });
  }
  // The agent's ConfigMap as the kubelet projects it: the keys are links
  // through ..data to a timestamped dir. Its agent.json moves the metrics
  // listener off the default port, which shows the agent read it.
  const metricsPort = 20_000 + Math.floor(Math.random() * 20_000);
  const configMaps = `${root}/configmaps`;
  await projectConfigMap(`${configMaps}/azure-vnet-agent`, {
    "agent.json": JSON.stringify({
      metrics: { address: `127.0.0.1:${metricsPort}` },
    }),
  });
  assert.deepEqual(
    directoriesToCreate(pod).filter((p) => p.startsWith("/opt/")).sort(),
    ["/opt/azure-vnet", "/opt/cni/bin"],
  );
  await bind(stack, `${root}/opt`, "/opt");
  const denoDir = DEFAULT_DENO_DIR.replace(/\/deno$/, "");
  await Deno.mkdir(`${root}${denoDir}`, { recursive: true });
  await bind(stack, `${root}${denoDir}`, denoDir);
  // On a node systemd makes every mount shared, so what a runtime mounts
  // under /var/run later can reach a HostToContainer mount of it; the temp
  // root's /var/run (on this test's private mounts) is made shared too.
  await bind(stack, `${root}/var/run`, `${root}/var/run`);
  await must("mount", ["--make-shared", `${root}/var/run`]);

  const n = stack.use(
    await AzureNode.create("10.93.0.0/16", {
      tag: prefix,
      argv: ["/opt/cni/bin/azure-vnet"],
    }),
  );
  const containers: string[] = [];
  stack.defer(async () => {
    for (const c of containers) await cmd("podman", ["rm", "-f", "-t", "0", c]);
  });
  /** `podman run <mode>` of one manifest container, under a prefixed name. */
  const podmanRun = (
    name: string,
    mode: readonly string[],
    spec: PodSpec = pod,
  ) => {
    const c = `${prefix}-${name}`;
    containers.push(c);
    return [
      "run",
      ...mode,
      ...machineFlags(),
      ...podmanRunArgs(spec, name, {
        name: c,
        image,
        hostPath: nodePath,
        hostNetwork: `ns:${n.node.path}`,
        configMap: (name) => `${configMaps}/${name}`,
      }),
    ];
  };
  const dirs = {
    AZURE_VNET_STATE_DIR: `${root}/var/run`,
    AZURE_VNET_LOG_DIR: `${root}/var/log`,
  };
  const env = (id: string, p: Netns | undefined) => ({
    ...n.env(id, p),
    ...dirs,
  });

  // The node had the Go plugin: the install keeps it for an uninstall.
  await Deno.writeTextFile(`${root}/opt/cni/bin/azure-vnet`, GO_PLUGIN, {
    mode: 0o755,
  });

  // The install checks the node's own libnl, ebtables and glibc through
  // /proc/1/root; PID 1 of this machine is not ours to inspect, so the
  // check looks through this process's root, the node's here.
  const nodeRootFlags = (path: string) => [
    "--env",
    `AZURE_VNET_HOST_ROOT=/proc/${Deno.pid}/root${path}`,
  ];

  await t.step(
    "the init container refuses a node without libnl or ebtables and installs no plugin",
    async () => {
      await Deno.mkdir(`${root}/bare-node/usr/lib`, { recursive: true });
      for (const c of pod.initContainers ?? []) {
        const r = await cmd(
          "podman",
          podmanRun(c.name, ["--rm", ...nodeRootFlags(`${root}/bare-node`)]),
        );
        assert.equal(r.code, 1, r.stdout + r.stderr);
        assert.match(
          r.stderr,
          /Cannot install: the node lacks libnl-3\.so\.200, libnl-route-3\.so\.200, .*ebtables, ebtables-restore.*apt-get install libnl-3-200 libnl-route-3-200 .*ebtables.*tdnf install libnl3 /,
        );
      }
      const bin = [];
      for await (const e of Deno.readDir("/opt/cni/bin")) bin.push(e.name);
      assert.deepEqual(bin, ["azure-vnet"], "only the Go plugin");
    },
  );

  await t.step(
    "the init container installs plugins, conflist and deno on the node",
    async () => {
      for (const c of pod.initContainers ?? []) {
        const out = await must(
          "podman",
          podmanRun(c.name, ["--rm", ...nodeRootFlags("")]),
        );
        assert.match(out, /verified azure-vnet \(launcher\)/);
        assert.match(out, /verified azure-vnet-ipam \(launcher\)/);
        assert.match(
          out,
          /^kept \/opt\/cni\/bin\/azure-vnet as \/opt\/cni\/bin\/azure-vnet\.pre-azure-vnet /m,
        );
      }
      assert.equal(
        await Deno.readTextFile("/opt/cni/bin/azure-vnet.pre-azure-vnet"),
        GO_PLUGIN,
      );
      for (const f of ["azure-vnet", "azure-vnet-ipam", "azure-vnet-agent"]) {
        assert.equal(
          ((await Deno.stat(`/opt/cni/bin/${f}`)).mode ?? 0) & 0o777,
          0o755,
        );
        assert.equal(
          ((await Deno.stat(`/opt/cni/bin/${f}.js`)).mode ?? 0) & 0o777,
          0o644,
        );
        assert.match(
          await Deno.readTextFile(`/opt/cni/bin/${f}`),
          new RegExp(`exec '${NODE_DENO_PATH}' run`),
        );
      }
      assert.equal(
        (await must(NODE_DENO_PATH, ["--version"])).split("\n")[0]?.split(
          " ",
        )[1],
        Deno.version.deno,
      );
      const conf = JSON.parse(
        await Deno.readTextFile(`${root}/etc/cni/net.d/10-azure.conflist`),
      );
      assert.equal(conf.plugins[0].type, "azure-vnet");
    },
  );

  const [p1, p2] = await n.pods(2);
  assert.ok(p1 && p2);
  let p3: Netns | undefined;
  const conflist = JSON.parse(
    await Deno.readTextFile(`${root}/etc/cni/net.d/10-azure.conflist`),
  );
  // The installed conflist's network, with a static pool: the testbed has
  // no wireserver.
  const conf = {
    cniVersion: conflist.cniVersion,
    name: conflist.name,
    ...conflist.plugins[0],
    ipam: n.staticIpam(n.pool(8)),
  };
  const gateway = n.addr(1);
  const main = pod.containers[0]?.name ?? "";
  const agent = `${prefix}-${main}`;
  const socket = `${root}/var/run/azure-vnet-agent.sock`;
  const readiness = probeCommand(pod, {
    container: main,
    probe: "readinessProbe",
  });
  assert.ok(readiness !== undefined, "a readiness probe");
  const inside = (sh: string) =>
    must("podman", ["exec", agent, "sh", "-c", sh]);

  await t.step(
    "the agent container runs in the node's network, PID and mounts",
    async () => {
      await must("podman", podmanRun(main, ["-d"]));
      assert.match(await inside("cat /proc/net/dev"), / eth0:/, "node netns");
      await inside(`test -d /proc/${Deno.pid}`); // host PID namespace
      await inside("ebtables -t nat -L >/dev/null"); // privileged, nft backend
      await inside("test -x /opt/cni/bin/azure-vnet && test -d /var/log");
      await inside(`test -e /var/run/netns/${p1.name}`);
      // HostToContainer: a pod netns made after the start shows up inside
      // as that namespace (its nsfs inode), not as the bare mount point.
      p3 = await n.pod();
      const p3ino = String((await Deno.stat(p3.path)).ino);
      assert.equal(
        (await inside(`stat -c %i /var/run/netns/${p3.name}`)).trim(),
        p3ino,
      );
      // So does one a runtime mounts under its state dir in /var/run
      // (containerd's netns_mounts_under_state_dir): /var/run is
      // HostToContainer too.
      const stateNs = `/var/run/${prefix}-netns/${p3.name}`;
      await Deno.mkdir(nodePath(dirName(stateNs)));
      await Deno.writeTextFile(nodePath(stateNs), "");
      await must("mount", ["--bind", p3.path, nodePath(stateNs)]);
      stack.defer(async () => void await cmd("umount", [nodePath(stateNs)]));
      assert.equal((await inside(`stat -c %i ${stateNs}`)).trim(), p3ino);
    },
  );

  await t.step(
    "the agent gets ready: the readiness probe, then the liveness healthcheck, pass",
    async () => {
      // As the kubelet does: the readiness command in the container until
      // it passes (the agent reconciles the state before it listens).
      const deadline = Date.now() + 20_000;
      let last: ProcessRun | undefined;
      while (Date.now() < deadline) {
        last = await cmd("podman", ["exec", agent, ...readiness]);
        if (last.code === 0) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(last?.code, 0, `not ready: ${last?.stdout}${last?.stderr}`);
      assert.match(last?.stdout ?? "", /azure-vnet-agent\.sock answers/);
      assert.ok(await exists(socket), "the socket in the node's /var/run");
      // The liveness probe is podman's healthcheck (translated flags).
      await must("podman", ["healthcheck", "run", agent]);
      // It read /etc/azure-vnet/agent.json from the ConfigMap: metrics on
      // the port that file names, in the node's network.
      const metrics = await n.node.exec(Deno.execPath(), [
        "eval",
        "--no-config",
        `const r = await fetch("http://127.0.0.1:${metricsPort}/metrics"); console.log(await r.text());`,
      ]);
      assert.match(metrics, /^azure_vnet_agent_up 1$/m);
    },
  );

  await t.step(
    "pods on the node get addresses from the agent through the installed plugin, and ping",
    async () => {
      for (const [i, p] of [p1, p2].entries()) {
        const add = await n.run("ADD", conf, env(`c${i}`, p));
        assert.equal(add.code, 0, add.stdout + add.stderr);
        assert.match(resultIp(add) ?? "", /^10\.93\.1\.\d+\/16$/);
      }
      const served = await servedAdds(`${root}/var/log`);
      assert.equal(served.length, 2, "the agent served both ADDs");
      assert.match(served[0] ?? "", /"c0" "eth0": code 0/);
      assert.match(served[1] ?? "", /"c1" "eth0": code 0/);
      assert.ok(await p1.ping(gateway), "pod1 -> gateway");
      assert.ok(await p2.ping(gateway), "pod2 -> gateway");
      const state = JSON.parse(
        await Deno.readTextFile(`${root}/var/run/azure-vnet.json`),
      );
      assert.equal(
        Object.keys(state.endpoints).length,
        2,
        "state in the node's /var/run",
      );
    },
  );

  await t.step(
    "stopping the container stops the agent; pods keep working and new ADDs fall back",
    async () => {
      // The manifest's grace period is podman's stop timeout: `podman stop`
      // sends SIGTERM and waits that long before SIGKILL.
      assert.equal(
        (await must("podman", [
          "inspect",
          "--format",
          "{{.Config.StopTimeout}}",
          agent,
        ])).trim(),
        String(pod.terminationGracePeriodSeconds),
      );
      await must("podman", ["stop", agent]);
      // Stopped by SIGTERM (code 0: drained), not killed after the grace.
      assert.equal(
        (await must("podman", [
          "inspect",
          "--format",
          "{{.State.Running}} {{.State.ExitCode}}",
          agent,
        ])).trim(),
        "false 0",
      );
      assert.ok(!await exists(socket), "the agent removed its socket");
      // The probe, run on the node against the node's socket, now fails.
      const probe = await spawnProcess(readiness, {
        env: { AZURE_VNET_STATE_DIR: `${root}/var/run` },
      }).done;
      assert.equal(probe.code, 1, probe.stdout + probe.stderr);
      assert.match(probe.stderr, /no socket at /);
      assert.ok(await p1.ping(gateway), "pod1 -> gateway after stop");
      assert.ok(await p2.ping(gateway), "pod2 -> gateway after stop");
      assert.ok(p3 !== undefined);
      const add = await n.run("ADD", conf, env("c3", p3));
      assert.equal(add.code, 0, add.stdout + add.stderr);
      assert.ok(await p3.ping(gateway), "pod3 -> gateway");
      const ip1 = resultIp(await n.run("ADD", conf, env("c0", p1)))?.split(
        "/",
      )[0];
      assert.ok(ip1 !== undefined && await p3.ping(ip1), "pod3 -> pod1");
      const del = await n.run("DEL", conf, env("c1", p2));
      assert.equal(del.code, 0, del.stdout + del.stderr);
      assert.ok(await p1.ping(gateway), "pod1 -> gateway after DEL of pod2");
      assert.equal(
        (await servedAdds(`${root}/var/log`)).length,
        2,
        "the ADDs after the stop ran in process (the fallback)",
      );
    },
  );

  await t.step(
    "entrypoint.sh uninstall, with the init container's mounts, gives the node back the Go plugin",
    async () => {
      const init = pod.initContainers?.[0];
      assert.ok(init !== undefined);
      const undo: PodSpec = {
        ...pod,
        initContainers: [{
          ...init,
          name: "uninstall-cni",
          command: ["/app/entrypoint.sh", "uninstall"],
        }],
      };
      const out = await must(
        "podman",
        podmanRun("uninstall-cni", ["--rm"], undo),
      );
      assert.match(out, /^restored \/opt\/cni\/bin\/azure-vnet /m);
      const left = [];
      for await (const e of Deno.readDir("/opt/cni/bin")) left.push(e.name);
      assert.deepEqual(left, ["azure-vnet"]);
      assert.equal(
        await Deno.readTextFile("/opt/cni/bin/azure-vnet"),
        GO_PLUGIN,
      );
      assert.ok(!await exists(`${root}/etc/cni/net.d/10-azure.conflist`));
    },
  );
});
