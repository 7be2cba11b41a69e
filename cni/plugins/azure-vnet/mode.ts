/**
 * A network's mode as a strategy: what differs between bridge mode
 * (`bridge_mode.ts`) and transparent mode (`transparent_mode.ts`) is one
 * {@link ModeDriver} each; the verbs pick the driver of the config (ADD)
 * or of the record (DEL, CHECK, GC, STATUS, teardown) and call it.
 *
 * @module
 */
import { CniError, CODES, type IpConfig } from "@vnet/cni";
import { BRIDGE_MODE } from "./bridge_mode.ts";
import type { Ebtables } from "./ebtables.ts";
import type { EbtablesRule } from "./ebtables_rules.ts";
import type {
  CreatedEndpoint,
  CreateEndpointSpec,
  DeleteEndpointSpec,
  EndpointContext,
} from "./endpoint.ts";
import type { Kernel, KernelNs } from "./kernel.ts";
import type { Leftovers } from "./leftovers.ts";
import type { CreateNetworkSpec, HostContext } from "./network.ts";
import type {
  AzureVnetState,
  EndpointRecord,
  NetworkMode,
  NetworkRecord,
} from "./state.ts";
import { TRANSPARENT_MODE } from "./transparent_mode.ts";

/** What a mode's CHECK compares. */
export interface ModeCheckSpec {
  /** The endpoint record. */
  readonly ep: EndpointRecord;
  /** Its network record. */
  readonly net: NetworkRecord;
  /** `CNI_NETNS`. */
  readonly netns: string;
  /**
   * `"endpoint"`: only what belongs to this attachment (a repeated ADD
   * re-attaches what it finds broken, which cannot mend the node's own
   * rules or forwarding); default everything CHECK checks.
   */
  readonly scope?: "endpoint" | "all";
}

/** What one attachment without a record may have left (DEL). */
export interface AttachmentTraces {
  /** The state snapshot. */
  readonly state: AzureVnetState;
  /** The network the DEL names. */
  readonly net: NetworkRecord;
  /**
   * Addresses the IPAM still holds for it: what names one is its own,
   * whatever MAC it carries.
   */
  readonly held: readonly string[];
  /**
   * Pod MACs it may have had (prevResult, pod end): what carries one is
   * its own. The addresses of a prevResult or a pod end are no proof by
   * themselves: the IPAM may have given them to a new pod since, whose ADD
   * plumbs them before it records them.
   */
  readonly macs: readonly string[];
  /**
   * Addresses the IPAM holds for other attachments: nothing naming one is
   * touched.
   */
  readonly spare: ReadonlySet<string>;
  /** True when its pod end is still attached to its host veth. */
  readonly podAttached: boolean;
}

/** The host side and the endpoints of one mode. */
export interface ModeDriver {
  /** The mode. */
  readonly mode: NetworkMode;
  /**
   * Refuses, before anything changes, addresses the mode cannot plumb (an
   * IPv6 address from a dual-stack IPAM).
   *
   * @throws {CniError} Code 7 naming the address and the way out.
   */
  refuseAddresses(ips: readonly IpConfig[]): void;
  /**
   * Why the recorded network's host side cannot serve an ADD as it is (the
   * kernel lost it: a reboot), or undefined when it can.
   */
  lost(host: KernelNs, net: NetworkRecord): string | undefined;
  /** Why STATUS must answer 50, or undefined when ADDs can be served. */
  statusProblem(host: KernelNs, net: NetworkRecord): string | undefined;
  /**
   * The ebtables rules the host side needs while the network lives (none
   * in transparent mode): STATUS reports the missing ones, ADD puts them
   * back.
   */
  hostRules(net: NetworkRecord): EbtablesRule[];
  /** Sets the host side up under the state lock; rolled back on failure. */
  createNetwork(
    ctx: HostContext,
    spec: CreateNetworkSpec,
  ): Promise<NetworkRecord>;
  /**
   * Removes the host side; `others` are the networks that stay. Returns
   * what the operator should know of what it leaves on the node, and why
   * (the state tool prints it).
   */
  teardownNetwork(
    ctx: HostContext,
    spec: { net: NetworkRecord; others: readonly NetworkRecord[] },
  ): Promise<string[]>;
  /** Creates an endpoint; rolled back on failure. */
  createEndpoint(
    ctx: EndpointContext,
    spec: CreateEndpointSpec,
  ): Promise<CreatedEndpoint>;
  /** Removes an endpoint's host side; returns the failures. */
  deleteEndpoint(
    ctx: EndpointContext,
    spec: DeleteEndpointSpec,
  ): Promise<unknown[]>;
  /** CHECK of the kernel (and ebtables) against the records. */
  checkEndpoint(
    ctx: { kernel: Kernel; ebtables: Ebtables },
    spec: ModeCheckSpec,
  ): Promise<string[]>;
  /**
   * What no endpoint record of the network accounts for (GC), in the
   * kernel and, for bridge mode, ebtables. What may be another network's
   * ADD in flight is taken only when a second look, `graceMs` later
   * (default `LEFTOVER_GRACE_MS`), finds it again.
   */
  leftovers(
    ctx: { host: KernelNs; ebtables: Ebtables },
    spec: {
      state: AzureVnetState;
      network: string;
      graceMs?: number;
      sleep?: (ms: number) => Promise<void>;
    },
  ): Promise<Leftovers>;
  /**
   * Removes what an unrecorded attachment may have left beyond its veth
   * (DEL); `evidence` tells whether anything says its ADD got that far.
   */
  removeTraces(
    ctx: { host: KernelNs; ebtables: Ebtables },
    traces: AttachmentTraces,
  ): Promise<{ errors: unknown[]; evidence: boolean }>;
}

const DRIVERS: Record<NetworkMode, ModeDriver> = {
  bridge: BRIDGE_MODE,
  transparent: TRANSPARENT_MODE,
};

/**
 * The driver of a mode.
 *
 * @param mode `bridge` or `transparent`.
 * @returns Its driver.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { modeDriver } from "./mode.ts";
 * assert.equal(modeDriver("transparent").mode, "transparent");
 * ```
 */
export function modeDriver(mode: NetworkMode): ModeDriver {
  return DRIVERS[mode];
}

/**
 * Refuses a config whose mode differs from the recorded network's: the
 * host side of one mode cannot serve the other.
 *
 * @param cfg The config's network name and mode.
 * @param net The recorded network, if any.
 * @param options `code`: the CNI code to fail with (default 7; STATUS
 * passes 50).
 * @throws {CniError} Naming both modes and the way out.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { refuseModeChange } from "./mode.ts";
 * const net = { mode: "bridge" as const, name: "azure" };
 * assert.throws(
 *   () => refuseModeChange({ name: "azure", mode: "transparent" }, net),
 *   { name: "CniError", code: 7, message: /in bridge mode/ },
 * );
 * ```
 */
export function refuseModeChange(
  cfg: { name: string; mode: NetworkMode },
  net: { mode: NetworkMode; name: string } | undefined,
  { code = CODES.invalidConfig }: { code?: number } = {},
): void {
  if (net === undefined || net.mode === cfg.mode) return;
  throw new CniError(
    code,
    `Network "${cfg.name}" exists in ${net.mode} mode; the config asks for ${cfg.mode} mode`,
    {
      details:
        `Remove its pods and the network first (deno task state teardown --network ${cfg.name}), or keep mode "${net.mode}"`,
    },
  );
}

/**
 * Removes an endpoint's host side with the driver of its network; without
 * a network record, only the host veth (its name derives from the
 * attachment) goes. Absent objects are fine. `spec.alongside` runs at most
 * once: while the kernel deletes the veth when the driver starts it (bridge
 * mode, once the neighbours and rules are gone), else after the removal,
 * and only when that removal succeeded: the address of a pod whose kernel
 * objects are left stays held for the retry.
 *
 * @param ctx Kernel, host handle, ebtables.
 * @param spec The host veth, the network, the pod's MAC and addresses,
 * and what to run alongside.
 * @returns The failures (empty on success), the removal's first.
 *
 * @example Usage
 * ```ts ignore
 * const errors = await deleteEndpoint({ kernel, host, ebtables }, {
 *   hostVeth: ep.hostVeth, network: net, pod: ep,
 * });
 * ```
 */
export async function deleteEndpoint(
  ctx: EndpointContext,
  spec: DeleteEndpointSpec,
): Promise<unknown[]> {
  const driver = modeDriver(spec.network?.mode ?? "bridge");
  const work = spec.alongside;
  if (work === undefined) return await driver.deleteEndpoint(ctx, spec);
  let started: Promise<unknown[]> | undefined;
  const alongside = () => started ??= work();
  const errors = await driver.deleteEndpoint(ctx, { ...spec, alongside });
  return started === undefined && errors.length === 0
    ? await alongside()
    : errors;
}
