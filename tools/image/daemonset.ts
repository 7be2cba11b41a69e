/**
 * The DaemonSet manifest (`deploy/azure-vnet-daemonset.yaml`) read as data,
 * and its pod translated into `podman run` arguments, so the image test runs
 * the container with exactly the privileges and mounts the manifest grants
 * (written once, in the manifest).
 *
 * The translation is strict about what reaches the node or changes what
 * the container runs: a pod or container key it does not know, a volume
 * other than a `hostPath` (of a type it replays) or a `configMap`, an `env`
 * with `valueFrom`, a `securityContext` key other than `privileged` or a
 * probe other than an `exec` one is an error, so a privilege added to the
 * manifest cannot be silently left out of the test. Keys with no podman
 * counterpart that grant nothing on the node are accepted and ignored:
 * scheduling (tolerations, node selector, affinity, priority, requests,
 * pull policy and secrets), DNS policy, the service account and its token
 * (the agent never talks to the API server), and `ports` of a
 * `hostNetwork` pod (declarative only there). A `configMap` volume is
 * mounted read-only from a directory the caller fills
 * ({@link PodmanRunOptions.configMap}), as the kubelet does. The liveness
 * probe becomes podman's healthcheck; the readiness probe has no podman
 * counterpart, so a test runs its command ({@link probeCommand}) as the
 * kubelet would.
 *
 * `deno task image` needs only the image's name ({@link manifestImage}), so
 * it builds from any manifest this translation would refuse.
 *
 * @module
 */
import { parse } from "yaml";

/** The manifest, relative to the repository root. */
export const DAEMONSET_PATH = "deploy/azure-vnet-daemonset.yaml";

/** Registry part of the manifest's image, replaced before applying. */
export const IMAGE_REGISTRY_PLACEHOLDER = "REPLACE_ME/";

/** One `volumeMounts` entry. */
export interface VolumeMount {
  /** The volume's name. */
  name: string;
  /** Where it appears in the container. */
  mountPath: string;
  /** Mounted read-only. */
  readOnly?: boolean;
  /** `None`, `HostToContainer` or `Bidirectional`. */
  mountPropagation?: string;
}

/** A probe: only `exec` ones (a command run in the container). */
export interface ExecProbe {
  /** The command; exit code 0 passes. */
  exec: { command: string[] };
  /** Seconds after the start before the first probe (default 0). */
  initialDelaySeconds?: number;
  /** Seconds between probes (default 10). */
  periodSeconds?: number;
  /** Seconds a probe may take (default 1). */
  timeoutSeconds?: number;
  /** Failures in a row that count (default 3). */
  failureThreshold?: number;
  /** Successes in a row that count (default 1). */
  successThreshold?: number;
}

/** One container (or init container) of the pod. */
export interface ContainerSpec {
  /** Its name. */
  name: string;
  /** The image reference. */
  image: string;
  /** The entrypoint (Kubernetes `command`). */
  command?: string[];
  /** Its arguments (Kubernetes `args`). */
  args?: string[];
  /** Plain `name`/`value` pairs. */
  env?: { name: string; value?: string }[];
  /** Only `privileged`. */
  securityContext?: { privileged?: boolean };
  /** Requests and limits (`cpu`, `memory`). */
  resources?: {
    requests?: Record<string, string>;
    limits?: Record<string, string>;
  };
  /** The mounts. */
  volumeMounts?: VolumeMount[];
  /** Restarts the container when it fails: podman's healthcheck. */
  livenessProbe?: ExecProbe;
  /** Marks the pod ready: no podman counterpart (see {@link probeCommand}). */
  readinessProbe?: ExecProbe;
}

/** One `hostPath` volume. */
export interface HostPathVolume {
  /** Its name. */
  name: string;
  /** The node's path and its `type`. */
  hostPath: { path: string; type?: string };
  /** Absent: no ConfigMap. */
  configMap?: undefined;
}

/** One `configMap` volume: the ConfigMap's keys as files, read-only. */
export interface ConfigMapVolume {
  /** Its name. */
  name: string;
  /** Absent: no host path. */
  hostPath?: undefined;
  /**
   * The ConfigMap's name; `optional`: the pod starts without it (an empty
   * directory).
   */
  configMap: { name: string; optional?: boolean; defaultMode?: number };
}

/** The pod template's spec, as far as it is translated. */
export interface PodSpec {
  /** The node's network namespace. */
  hostNetwork?: boolean;
  /** The node's PID namespace. */
  hostPID?: boolean;
  /** Seconds between SIGTERM and SIGKILL. */
  terminationGracePeriodSeconds?: number;
  /** Run to completion, in order, before {@link containers}. */
  initContainers?: ContainerSpec[];
  /** The long-running containers. */
  containers: ContainerSpec[];
  /** Every volume: `hostPath` and `configMap` ones. */
  volumes?: (HostPathVolume | ConfigMapVolume)[];
  /** Scheduling only. */
  tolerations?: { key?: string; operator?: string; effect?: string }[];
}

/**
 * Pod keys with no podman counterpart that grant nothing on the node:
 * scheduling, DNS, the service account and its token.
 */
const POD_SCHEDULING_KEYS = [
  "affinity",
  "automountServiceAccountToken",
  "dnsPolicy",
  "imagePullSecrets",
  "nodeSelector",
  "priorityClassName",
  "serviceAccount",
  "serviceAccountName",
  "tolerations",
];
const POD_KEYS = [
  ...POD_SCHEDULING_KEYS,
  "hostNetwork",
  "hostPID",
  "terminationGracePeriodSeconds",
  "initContainers",
  "containers",
  "volumes",
];
const CONTAINER_KEYS = [
  "name",
  "image",
  "imagePullPolicy",
  "command",
  "args",
  "env",
  "securityContext",
  "resources",
  "volumeMounts",
  "livenessProbe",
  "readinessProbe",
];
/** Container keys accepted in a `hostNetwork` pod only. */
const HOST_NETWORK_CONTAINER_KEYS = ["ports"];
const PROBE_KEYS = [
  "exec",
  "initialDelaySeconds",
  "periodSeconds",
  "timeoutSeconds",
  "failureThreshold",
  "successThreshold",
];
const PROPAGATION: Readonly<Record<string, string>> = {
  None: "rprivate",
  HostToContainer: "rslave",
  Bidirectional: "rshared",
};
const VOLUME_TYPES = ["", "Directory", "DirectoryOrCreate"];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function checkKeys(
  obj: Record<string, unknown>,
  allowed: readonly string[],
  where: string,
): void {
  const unknown = Object.keys(obj).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new RangeError(
      `Cannot translate ${where}: unknown key(s) ${
        unknown.map((k) => `"${k}"`).join(", ")
      }`,
    );
  }
}

function checkProbe(probe: unknown, where: string): void {
  if (!isObject(probe)) throw new RangeError(`Cannot translate the ${where}`);
  checkKeys(probe, PROBE_KEYS, `the ${where}`);
  const command = isObject(probe.exec) ? probe.exec.command : undefined;
  if (
    !isObject(probe.exec) || !Array.isArray(command) || command.length === 0 ||
    !command.every((a) => typeof a === "string")
  ) {
    throw new RangeError(
      `Cannot translate the ${where}: want exec.command, a list of strings`,
    );
  }
  checkKeys(probe.exec, ["command"], `the exec of the ${where}`);
  for (const k of PROBE_KEYS.slice(1)) {
    const v = probe[k];
    if (v !== undefined && !(Number.isInteger(v) && Number(v) >= 0)) {
      throw new RangeError(`Cannot translate the ${where}: ${k} "${v}"`);
    }
  }
}

/**
 * Parses the manifest and returns its pod template's spec, checked against
 * what {@link podmanRunArgs} can translate.
 *
 * @param text The manifest's YAML.
 * @returns The pod spec.
 * @throws {TypeError} When it is no DaemonSet with a pod template.
 * @throws {RangeError} When the pod or a container has a key that cannot be
 *   translated, or a volume is not a `hostPath` of a known type.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readPodSpec } from "./daemonset.ts";
 * const pod = readPodSpec(`
 * kind: DaemonSet
 * spec:
 *   template:
 *     spec:
 *       hostNetwork: true
 *       containers:
 *         - name: a
 *           image: x/y:1
 * `);
 * assert.equal(pod.containers[0]?.name, "a");
 * ```
 */
export function readPodSpec(text: string): PodSpec {
  const doc: unknown = parse(text);
  if (!isObject(doc) || doc.kind !== "DaemonSet") {
    throw new TypeError("Cannot read the manifest: not a DaemonSet");
  }
  const pod = isObject(doc.spec) && isObject(doc.spec.template) &&
      isObject(doc.spec.template.spec)
    ? doc.spec.template.spec
    : undefined;
  if (pod === undefined || !Array.isArray(pod.containers)) {
    throw new TypeError("Cannot read the manifest: no pod template");
  }
  checkKeys(pod, POD_KEYS, "the pod spec");
  const all = [
    ...(Array.isArray(pod.initContainers) ? pod.initContainers : []),
    ...pod.containers,
  ];
  for (const c of all) {
    if (!isObject(c)) throw new TypeError("Cannot read a container");
    checkKeys(
      c,
      pod.hostNetwork === true
        ? [...CONTAINER_KEYS, ...HOST_NETWORK_CONTAINER_KEYS]
        : CONTAINER_KEYS,
      `container "${String(c.name)}"`,
    );
    if (isObject(c.securityContext)) {
      checkKeys(
        c.securityContext,
        ["privileged"],
        `the securityContext of "${String(c.name)}"`,
      );
    }
    for (const e of Array.isArray(c.env) ? c.env : []) {
      if (isObject(e)) checkKeys(e, ["name", "value"], `an env of ${c.name}`);
    }
    for (const key of ["livenessProbe", "readinessProbe"]) {
      if (c[key] !== undefined) checkProbe(c[key], `${key} of "${c.name}"`);
    }
  }
  for (const v of Array.isArray(pod.volumes) ? pod.volumes : []) {
    if (isObject(v) && isObject(v.configMap)) {
      checkKeys(v, ["name", "configMap"], `volume "${String(v.name)}"`);
      checkKeys(
        v.configMap,
        ["name", "optional", "defaultMode"],
        `the configMap of volume "${String(v.name)}"`,
      );
      continue;
    }
    if (!isObject(v) || !isObject(v.hostPath)) {
      throw new RangeError(
        `Cannot translate volume "${
          isObject(v) ? String(v.name) : "?"
        }": only hostPath and configMap volumes are supported`,
      );
    }
    checkKeys(v, ["name", "hostPath"], `volume "${String(v.name)}"`);
    if (!VOLUME_TYPES.includes(String(v.hostPath.type ?? ""))) {
      throw new RangeError(
        `Cannot translate volume "${String(v.name)}": hostPath type "${
          String(v.hostPath.type)
        }"`,
      );
    }
  }
  return pod as unknown as PodSpec;
}

/** The machine-specific part of {@link podmanRunArgs}. */
export interface PodmanRunOptions {
  /** The container name podman gets. */
  name: string;
  /** The image to run (a local one, in place of the manifest's). */
  image: string;
  /**
   * Where the node's `hostPath` `path` is on this machine (the identity on
   * a real node; a temporary root in the image test).
   */
  hostPath: (path: string) => string;
  /**
   * The podman `--network` value that stands for the node's network when
   * `hostNetwork` is true: `host`, or `ns:/var/run/netns/<node>`.
   */
  hostNetwork: string;
  /**
   * The directory holding a ConfigMap's keys as files (the kubelet's
   * projection), mounted read-only where a `configMap` volume is; an
   * empty one for an optional ConfigMap that is absent. Required when the
   * container mounts a `configMap` volume.
   */
  configMap?: (name: string) => string | undefined;
}

function findContainer(pod: PodSpec, name: string): ContainerSpec {
  const c = [...(pod.initContainers ?? []), ...pod.containers].find((x) =>
    x.name === name
  );
  if (c === undefined) {
    throw new RangeError(`Cannot translate container "${name}": none`);
  }
  return c;
}

/** The directory on this machine that a volume stands for. */
function volumeSource(
  pod: PodSpec,
  name: string,
  options: PodmanRunOptions,
): string {
  const v = pod.volumes?.find((x) => x.name === name);
  if (v === undefined) {
    throw new RangeError(`Cannot translate mount "${name}": no such volume`);
  }
  if (v.hostPath !== undefined) return options.hostPath(v.hostPath.path);
  const dir = options.configMap?.(v.configMap.name);
  if (dir === undefined) {
    throw new RangeError(
      `Cannot translate volume "${name}": no directory for ConfigMap "${v.configMap.name}"`,
    );
  }
  return dir;
}

function checkPath(path: string, what: string): string {
  if (!path.startsWith("/") || /[:,]/.test(path)) {
    throw new RangeError(`Cannot use ${what} "${path}" in a podman volume`);
  }
  return path;
}

/**
 * The `podman run` arguments (after `run`, without a detach or remove mode)
 * that give one container of the pod exactly the manifest's privileges,
 * namespaces, mounts, environment, limits and command.
 *
 * - `hostNetwork: true` → `--network <options.hostNetwork>`, `hostPID:
 *   true` → `--pid host`, `privileged: true` → `--privileged`; a pod
 *   without them gets podman's defaults (`--network none` for the network).
 * - each `volumeMounts` entry → `--volume <hostPath(path)>:<mountPath>`
 *   with `ro` and the propagation (`HostToContainer` → `rslave`,
 *   `Bidirectional` → `rshared`, `None` → `rprivate`); a `configMap`
 *   volume's source is `configMap(name)`, always `ro`;
 * - `limits.memory`/`limits.cpu` → `--memory`/`--cpus` (requests only
 *   steer scheduling); `terminationGracePeriodSeconds` → `--stop-timeout`
 *   (so `podman stop` waits that long between SIGTERM and SIGKILL);
 * - `livenessProbe` → `--health-cmd` (JSON) with `--health-interval`
 *   (`periodSeconds`), `--health-timeout` (`timeoutSeconds`),
 *   `--health-retries` (`failureThreshold`), `--health-start-period`
 *   (`initialDelaySeconds`; podman runs checks in it but does not count
 *   their failures) and `--health-on-failure restart`, each with the
 *   Kubernetes default when absent; `readinessProbe` has no counterpart
 *   ({@link probeCommand});
 * - `command` → `--entrypoint` (JSON), then the image, then `args`.
 *
 * Always `--pull never`: only local images run.
 *
 * @param pod The pod spec from {@link readPodSpec}.
 * @param container The container's name in the manifest.
 * @param options Name, image, host paths and the node's network.
 * @returns The arguments.
 * @throws {RangeError} For an unknown container or volume, a path podman
 *   cannot take, or a quantity it cannot convert.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { podmanRunArgs, readPodSpec } from "./daemonset.ts";
 * const pod = readPodSpec(`
 * kind: DaemonSet
 * spec:
 *   template:
 *     spec:
 *       hostNetwork: true
 *       containers:
 *         - name: a
 *           image: x/y:1
 *           volumeMounts:
 *             - name: bin
 *               mountPath: /opt/cni/bin
 *       volumes:
 *         - name: bin
 *           hostPath:
 *             path: /opt/cni/bin
 * `);
 * const args = podmanRunArgs(pod, "a", {
 *   name: "t-a",
 *   image: "localhost/y:1",
 *   hostPath: (p) => `/tmp/root${p}`,
 *   hostNetwork: "host",
 * });
 * assert.ok(args.includes("/tmp/root/opt/cni/bin:/opt/cni/bin:rprivate"));
 * ```
 */
export function podmanRunArgs(
  pod: PodSpec,
  container: string,
  options: PodmanRunOptions,
): string[] {
  const c = findContainer(pod, container);
  const args = ["--pull", "never", "--name", options.name];
  args.push("--network", pod.hostNetwork ? options.hostNetwork : "none");
  if (pod.hostPID) args.push("--pid", "host");
  if (c.securityContext?.privileged) args.push("--privileged");
  if (pod.terminationGracePeriodSeconds !== undefined) {
    args.push("--stop-timeout", String(pod.terminationGracePeriodSeconds));
  }
  const limits = c.resources?.limits ?? {};
  if (limits.memory !== undefined) {
    args.push("--memory", memoryBytes(limits.memory));
  }
  if (limits.cpu !== undefined) args.push("--cpus", cpus(limits.cpu));
  for (const m of c.volumeMounts ?? []) {
    const src = checkPath(volumeSource(pod, m.name, options), "host path");
    const prop = PROPAGATION[m.mountPropagation ?? "None"];
    if (prop === undefined) {
      throw new RangeError(
        `Cannot translate mountPropagation "${m.mountPropagation}"`,
      );
    }
    // The kubelet mounts a ConfigMap read-only whatever the mount says.
    const configMap = pod.volumes?.some((v) =>
      v.name === m.name && v.configMap !== undefined
    );
    const ro = m.readOnly === true || configMap === true;
    const opts = [...(ro ? ["ro"] : []), prop].join(",");
    args.push("--volume", `${src}:${checkPath(m.mountPath, "path")}:${opts}`);
  }
  for (const e of c.env ?? []) args.push("--env", `${e.name}=${e.value ?? ""}`);
  const live = c.livenessProbe;
  if (live !== undefined) {
    args.push(
      ...["--health-cmd", JSON.stringify(live.exec.command)],
      ...["--health-interval", `${live.periodSeconds ?? 10}s`],
      ...["--health-timeout", `${live.timeoutSeconds ?? 1}s`],
      ...["--health-retries", String(live.failureThreshold ?? 3)],
      ...["--health-start-period", `${live.initialDelaySeconds ?? 0}s`],
      ...["--health-on-failure", "restart"],
    );
  }
  if (c.command !== undefined) {
    args.push("--entrypoint", JSON.stringify(c.command));
  }
  args.push(options.image, ...(c.args ?? []));
  return args;
}

/**
 * The command of a container's exec probe, to run in the container (`podman
 * exec`) as the kubelet would: the readiness probe has no podman
 * counterpart, and the liveness one is podman's healthcheck.
 *
 * @param pod The pod spec.
 * @param options `container`, its name in the manifest, and `probe`,
 *   `livenessProbe` or `readinessProbe`.
 * @returns The command, or undefined when the container has no such probe.
 * @throws {RangeError} For an unknown container.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { probeCommand } from "./daemonset.ts";
 * const pod = {
 *   containers: [{
 *     name: "a",
 *     image: "x/y:1",
 *     readinessProbe: { exec: { command: ["test", "-S", "/s"] } },
 *   }],
 * };
 * assert.deepEqual(
 *   probeCommand(pod, { container: "a", probe: "readinessProbe" }),
 *   ["test", "-S", "/s"],
 * );
 * assert.equal(
 *   probeCommand(pod, { container: "a", probe: "livenessProbe" }),
 *   undefined,
 * );
 * ```
 */
export function probeCommand(
  pod: PodSpec,
  options: { container: string; probe: "livenessProbe" | "readinessProbe" },
): string[] | undefined {
  return findContainer(pod, options.container)[options.probe]?.exec.command;
}

/**
 * The host paths the pod's `DirectoryOrCreate` volumes need, which the
 * kubelet creates before the pod starts (podman does not).
 *
 * @param pod The pod spec.
 * @returns The node's paths, in volume order.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { directoriesToCreate } from "./daemonset.ts";
 * const pod = {
 *   containers: [],
 *   volumes: [{ name: "a", hostPath: { path: "/a", type: "DirectoryOrCreate" } }],
 * };
 * assert.deepEqual(directoriesToCreate(pod), ["/a"]);
 * ```
 */
export function directoriesToCreate(pod: PodSpec): string[] {
  return (pod.volumes ?? []).flatMap((v) =>
    v.hostPath?.type === "DirectoryOrCreate" ? [v.hostPath.path] : []
  );
}

/**
 * The image of the manifest's first container, read without
 * {@link readPodSpec}'s checks: building the image needs no more, so a
 * manifest the test's translation would refuse still builds.
 *
 * @param text The manifest's YAML.
 * @returns The `image`, such as `REPLACE_ME/azure-vnet-deno:0.1.0`.
 * @throws {TypeError} When it is no DaemonSet with a container image.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { manifestImage } from "./daemonset.ts";
 * const text = `
 * kind: DaemonSet
 * spec:
 *   template:
 *     spec:
 *       containers:
 *         - name: a
 *           image: x/y:1
 *           startupProbe:
 *             httpGet:
 *               port: 80
 * `;
 * assert.equal(manifestImage(text), "x/y:1");
 * ```
 */
export function manifestImage(text: string): string {
  const doc: unknown = parse(text);
  const spec = isObject(doc) && doc.kind === "DaemonSet" &&
      isObject(doc.spec) && isObject(doc.spec.template) &&
      isObject(doc.spec.template.spec)
    ? doc.spec.template.spec
    : undefined;
  const first = Array.isArray(spec?.containers)
    ? spec.containers[0]
    : undefined;
  if (!isObject(first) || typeof first.image !== "string") {
    throw new TypeError(
      "Cannot read the manifest: no DaemonSet container image",
    );
  }
  return first.image;
}

/**
 * The local image reference of the manifest's image: the registry
 * placeholder becomes `localhost/`.
 *
 * @param image The manifest's `image`.
 * @returns The reference `deno task image` tags.
 * @throws {RangeError} When the image lacks the placeholder registry.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { localImage } from "./daemonset.ts";
 * assert.equal(
 *   localImage("REPLACE_ME/azure-vnet-deno:0.1.0"),
 *   "localhost/azure-vnet-deno:0.1.0",
 * );
 * ```
 */
export function localImage(image: string): string {
  if (!image.startsWith(IMAGE_REGISTRY_PLACEHOLDER)) {
    throw new RangeError(
      `Cannot map image "${image}": no "${IMAGE_REGISTRY_PLACEHOLDER}" registry`,
    );
  }
  return `localhost/${image.slice(IMAGE_REGISTRY_PLACEHOLDER.length)}`;
}

const MEMORY_UNITS: Readonly<Record<string, number>> = {
  "": 1,
  Ki: 1024,
  Mi: 1024 ** 2,
  Gi: 1024 ** 3,
  k: 1000,
  M: 1000 ** 2,
  G: 1000 ** 3,
};

/**
 * A Kubernetes memory quantity in bytes, as podman's `--memory` takes it.
 *
 * @param quantity Such as `128Mi`.
 * @returns The byte count as text.
 * @throws {RangeError} For a quantity it does not know.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { memoryBytes } from "./daemonset.ts";
 * assert.equal(memoryBytes("128Mi"), "134217728");
 * ```
 */
export function memoryBytes(quantity: string): string {
  const m = /^(\d+)([KMG]i?|k)?$/.exec(quantity);
  const unit = MEMORY_UNITS[m?.[2] ?? ""];
  if (m === null || unit === undefined) {
    throw new RangeError(`Cannot convert memory quantity "${quantity}"`);
  }
  return String(Number(m[1]) * unit);
}

/**
 * A Kubernetes CPU quantity as podman's `--cpus` takes it.
 *
 * @param quantity Such as `500m` or `1`.
 * @returns The number of CPUs as text.
 * @throws {RangeError} For a quantity it does not know.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { cpus } from "./daemonset.ts";
 * assert.equal(cpus("500m"), "0.5");
 * ```
 */
export function cpus(quantity: string): string {
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(quantity);
  if (m === null) {
    throw new RangeError(`Cannot convert cpu quantity "${quantity}"`);
  }
  return String(Number(m[1]) / (m[2] === "m" ? 1000 : 1));
}
