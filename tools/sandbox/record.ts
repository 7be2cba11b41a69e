/**
 * The sandbox record: what `up` created, so `status`, `exec` and `down` act
 * on exactly that. Written atomically (temp file + rename).
 *
 * @module
 */

/** One node as created. */
export interface NodeRecord {
  /** Node index. */
  readonly index: number;
  /** Its netns. */
  readonly netns: string;
  /** Its fabric port. */
  readonly port: string;
  /** The ARM NIC name. */
  readonly nicName: string;
  /** The NIC MAC (Linux form). */
  readonly mac: string;
  /** The primary IPv4 address. */
  readonly primaryIp: string;
  /** The primary IPv6 address (dual-stack sandboxes only). */
  readonly primaryIpv6?: string;
  /** AZURE_VNET_STATE_DIR for this node's plugins. */
  readonly stateDir: string;
  /** AZURE_VNET_LOG_DIR for this node's plugins. */
  readonly logDir: string;
}

/** One pod as created. */
export interface PodRecord {
  /** Pod name (= its netns unless `netns` says otherwise). */
  readonly name: string;
  /** An existing netns the pod joined (not created nor deleted for it). */
  readonly netns?: string;
  /** Node index. */
  readonly node: number;
  /** CNI_CONTAINERID. */
  readonly containerId: string;
  /** CNI_IFNAME. */
  readonly ifName: string;
  /** The pod IPv4 address (no prefix). */
  readonly ip: string;
  /** The pod IPv6 address (no prefix; dual-stack sandboxes only). */
  readonly ipv6?: string;
  /** The pod interface MAC. */
  readonly mac: string;
}

/** The plugin's mode in a sandbox (`mode` of the conflist). */
export type SandboxMode = "bridge" | "transparent";

/** The whole record. */
export interface SandboxRecord {
  /** Format version. */
  version: 1;
  /** The sandbox prefix. */
  prefix: string;
  /** The sandbox directory (record, emulator state, binaries, logs). */
  dir: string;
  /** The subnet CIDR. */
  subnet: string;
  /**
   * The IPv6 subnet (a /64) of a dual-stack sandbox; absent when IPv4
   * only.
   */
  ipv6Subnet?: string;
  /**
   * The plugin's mode (#15); absent in records written before it (bridge
   * mode).
   */
  mode?: SandboxMode;
  /** Every netns created, in creation order. */
  netns: string[];
  /** The emulator process, once started. */
  emulator:
    | { pid: number; stateFile: string; caFile: string; armEndpoint: string }
    | undefined;
  /** Plugin install locations. */
  binDir: string;
  /** Conflist directory. */
  confDir: string;
  /** Nodes. */
  nodes: NodeRecord[];
  /**
   * Whether the nodes run `azure-vnet-agent` (#14); absent in records
   * written before it (no agents).
   */
  agent?: boolean;
  /** The running agents, by node index. */
  agents?: { node: number; pid: number }[];
  /**
   * The agents' warm pool (#16): free addresses kept between `min` and
   * `max`; absent when off.
   */
  warm?: { min: number; max: number };
  /** Pods. */
  pods: PodRecord[];
}

/**
 * Writes the record atomically.
 *
 * @param path The record file.
 * @param record The record.
 */
export async function saveRecord(
  path: string,
  record: SandboxRecord,
): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(record, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

/**
 * Reads a record.
 *
 * @param path The record file.
 * @returns The record.
 * @throws {Deno.errors.NotFound} When there is no sandbox at `path`.
 * @throws {SyntaxError} When the file is corrupt or of another version.
 */
export async function loadRecord(path: string): Promise<SandboxRecord> {
  const text = await Deno.readTextFile(path);
  const rec = JSON.parse(text) as SandboxRecord;
  if (rec.version !== 1) {
    throw new SyntaxError(
      `Cannot read sandbox record "${path}": unknown version ${rec.version}`,
    );
  }
  return rec;
}
