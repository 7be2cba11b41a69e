/**
 * A NIC's IP configurations through Azure Resource Manager with the Azure
 * SDK (`@azure/arm-network`, `@azure/identity`: managed identity on a VM),
 * the one SDK code path of the repository: the NIC tool (`tools/nic/`) and
 * the agent's warm pool (#16) both use it. The SDK is loaded with a dynamic
 * `import()` inside {@link openNic}, so importing this module costs nothing
 * (docs/STYLE.md section 2); the plugins never import this member.
 *
 * @module
 */
import { getImdsInstance } from "@vnet/azure";
import { azureMac } from "@vnet/address";
import { ArmConflictError, ArmOperationError } from "./errors.ts";
import { readRetryPolicy, type RetriedAttempt } from "./_read_retry.ts";

/** A NIC's place in ARM. */
export interface NicRef {
  readonly subscriptionId: string;
  readonly resourceGroup: string;
  readonly name: string;
}

/** Minimal view of the SDK's flattened ipconfig model. */
export interface IpConfigModel {
  name?: string;
  privateIPAddress?: string;
  /** `"IPv4"` (ARM's default when absent) or `"IPv6"`. */
  privateIPAddressVersion?: string;
  primary?: boolean;
  subnet?: { id?: string };
  [key: string]: unknown;
}

/** Minimal view of the SDK's NIC model. */
export interface NicModel {
  id?: string;
  name?: string;
  macAddress?: string;
  ipConfigurations?: IpConfigModel[];
  [key: string]: unknown;
}

/** One batched change of a NIC's secondary ipconfigs. */
export interface IpConfigChange {
  /** Names of new Dynamic IPv4 ipconfigs in the primary's subnet. */
  readonly add: readonly string[];
  /**
   * Names of new Dynamic IPv6 ipconfigs in the primary's subnet, which must
   * have an IPv6 address prefix (dual-stack, #15). Default none.
   */
  readonly addIpv6?: readonly string[] | undefined;
  /** Names of ipconfigs to drop (never the primary), of either version. */
  readonly remove: readonly string[];
}

/** Options of {@link openNic}. */
export interface OpenNicOptions {
  /** ARM id of the NIC; default: found through IMDS. */
  readonly nicId?: string | undefined;
  /** IMDS base URL (default `http://169.254.169.254`). */
  readonly imdsUrl?: string | undefined;
  /** ARM endpoint (default `https://management.azure.com`). */
  readonly armEndpoint?: string | undefined;
  /** PEM file of a CA to trust for ARM (tests, sandbox). */
  readonly caFile?: string | undefined;
  /**
   * Retries inside the SDK (default: the SDK's own policy); 0 leaves
   * throttling and server errors to the caller (the warm pool's backoff).
   */
  readonly maxRetries?: number | undefined;
  /**
   * Retries, on 429, 5xx and no answer, of the reads an update depends on
   * (its long-running operation's polls and final GET) and of
   * `get({ retry: true })`. Default 3 when `maxRetries` is set (the caller
   * turned the SDK's retries down), else 0 (the SDK's own retries cover
   * them).
   */
  readonly readRetries?: number | undefined;
  /**
   * Told of each attempt of those reads that failed and was retried, with
   * the call it belongs to (`update` for the polls), so that a caller
   * counting requests counts these too; the last attempt's failure reaches
   * the caller as the call's error instead.
   */
  readonly onRetry?:
    | ((attempt: { operation: "get" | "update" } & RetriedAttempt) => void)
    | undefined;
  /** LRO poll interval when ARM sends no Retry-After (default 1000 ms). */
  readonly pollIntervalMs?: number | undefined;
  /** Receives progress lines (default: none). */
  readonly progress?: ((line: string) => void) | undefined;
}

/** Options of {@link ArmNic.get}. */
export interface NicGetOptions {
  /**
   * Retry 429, 5xx and no answer (`readRetries` times): a read that must
   * get through, such as the one that finds out what ARM has after an
   * update failed. Default false: one request, the caller backs off.
   */
  readonly retry?: boolean;
}

/** A NIC bound to an ARM client. */
export interface ArmNic {
  /** Where the NIC is. */
  readonly ref: NicRef;
  /** Reads the NIC (one GET, or a few with `retry`). */
  get(options?: NicGetOptions): Promise<NicModel>;
  /**
   * Applies one batched change to `current` (one PUT, a long-running
   * operation) and returns the NIC as ARM left it. The PUT carries
   * `If-Match` with `current.etag`, so it replaces the ipconfig list only
   * if nobody changed the NIC since `current` was read. With `readRetries`,
   * a poll that gets 429, 5xx or no answer is retried: after the PUT, ARM
   * may well have applied the change.
   *
   * @throws {ArmConflictError} When the NIC changed since (412): nothing
   *   was applied; read it again and plan again.
   * @throws {ArmOperationError} When ARM accepted the PUT and then failed
   *   the operation (`SubnetIsFull`...).
   */
  update(current: NicModel, change: IpConfigChange): Promise<NicModel>;
}

const VMSS_RE = /\/virtualMachineScaleSets\/([^/]+)\/virtualMachines\//i;

function vmssError(what: string, id: string): Error {
  const ss = VMSS_RE.exec(id)?.[1] ?? "?";
  return new Error(
    `Cannot provision ${what} "${id}": it belongs to VM scale set "${ss}"; ` +
      "NICs of uniform scale-set instances are read-only through " +
      "Microsoft.Network, so change ipConfigurations in the scale set model " +
      "(Microsoft.Compute virtualMachineScaleSets networkProfile) instead",
  );
}

/**
 * Parses a NIC's ARM id.
 *
 * @param id `/subscriptions/S/resourceGroups/G/providers/Microsoft.Network/networkInterfaces/N`.
 * @returns Its parts.
 * @throws {SyntaxError} For anything else.
 * @throws {Error} For a scale-set instance's NIC (read-only through
 *   Microsoft.Network).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseNicId } from "./nic.ts";
 * assert.deepEqual(
 *   parseNicId("/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/networkInterfaces/n"),
 *   { subscriptionId: "s", resourceGroup: "g", name: "n" },
 * );
 * ```
 */
export function parseNicId(id: string): NicRef {
  if (VMSS_RE.test(id)) throw vmssError("NIC", id);
  const m =
    /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.Network\/networkInterfaces\/([^/]+)$/i
      .exec(id);
  if (m?.[1] === undefined || m[2] === undefined || m[3] === undefined) {
    throw new SyntaxError(`Cannot parse NIC id "${id}"`);
  }
  return { subscriptionId: m[1], resourceGroup: m[2], name: m[3] };
}

/** The numeric suffix of `ipconfig<N>`, for ordering (0 for others). */
function order(name: string | undefined): number {
  const m = /^ipconfig(\d+)$/.exec(name ?? "");
  return m?.[1] === undefined ? 0 : Number(m[1]);
}

/**
 * Tells whether an ipconfig is IPv6 (ARM's `privateIPAddressVersion`,
 * IPv4 when absent).
 *
 * @param config The ipconfig as ARM or the SDK gives it.
 * @returns True for IPv6.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { isIpv6Config } from "./nic.ts";
 * assert.equal(isIpv6Config({ privateIPAddressVersion: "IPv6" }), true);
 * assert.equal(isIpv6Config({ name: "ipconfig1" }), false);
 * ```
 */
export function isIpv6Config(config: IpConfigModel): boolean {
  return config.privateIPAddressVersion === "IPv6";
}

/**
 * The PUT body of one batched change: the NIC with `remove` dropped, `add`
 * appended as Dynamic IPv4 ipconfigs in the primary's subnet, the IPv4 ones
 * sorted by their `ipconfig<N>` number, then the IPv6 ones in the NIC's
 * order followed by `addIpv6` as Dynamic IPv6 ipconfigs in the same subnet.
 *
 * @param nic The NIC as read.
 * @param change What to add and remove.
 * @returns The body.
 * @throws {Error} When the NIC has no primary ipconfig with a subnet, or
 *   `remove` names the primary.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { ipConfigUpdateBody } from "./nic.ts";
 * const body = ipConfigUpdateBody({ ipConfigurations: [
 *   { name: "ipconfig1", primary: true, subnet: { id: "s" } },
 *   { name: "ipconfig2", primary: false, subnet: { id: "s" } },
 * ] }, { add: ["ipconfig3"], remove: ["ipconfig2"] });
 * assert.deepEqual(body.ipConfigurations?.map((c) => c.name), ["ipconfig1", "ipconfig3"]);
 * ```
 */
export function ipConfigUpdateBody(
  nic: NicModel,
  change: IpConfigChange,
): NicModel {
  const configs = nic.ipConfigurations ?? [];
  const primary = configs.find((c) => c.primary === true);
  if (primary?.name === undefined || primary.subnet?.id === undefined) {
    throw new Error(
      `Cannot update NIC "${nic.id ?? nic.name ?? "?"}": no primary ipconfig`,
    );
  }
  if (change.remove.includes(primary.name)) {
    throw new Error(
      `Cannot remove the primary ipconfig "${primary.name}" of NIC "${
        nic.id ?? nic.name ?? "?"
      }"`,
    );
  }
  const drop = new Set(change.remove);
  const subnetId = primary.subnet.id;
  const kept = configs.filter((c) => c.name === undefined || !drop.has(c.name));
  const added = (names: readonly string[], version: "IPv4" | "IPv6") =>
    names.map((name) => ({
      name,
      privateIPAllocationMethod: "Dynamic",
      privateIPAddressVersion: version,
      subnet: { id: subnetId },
      primary: false,
    }));
  return {
    ...nic,
    ipConfigurations: [
      ...[
        ...kept.filter((c) => !isIpv6Config(c)),
        ...added(change.add, "IPv4"),
      ].sort((a, b) => order(a.name) - order(b.name)),
      ...kept.filter(isIpv6Config),
      ...added(change.addIpv6 ?? [], "IPv6"),
    ],
  };
}

/**
 * Connects to ARM with managed identity and binds the node's NIC: the one
 * named by `nicId`, else the VM's first NIC found through IMDS (list the
 * resource group's NICs, match `virtualMachine.id` and the MAC). Loads the
 * SDK on first use.
 *
 * The managed identity's token comes from IMDS (`169.254.169.254`, or
 * `AZURE_POD_IDENTITY_AUTHORITY_HOST` as `@azure/identity` reads it).
 *
 * @param options The NIC id, endpoints, CA, retries, progress.
 * @returns The NIC.
 * @throws {Error} For a scale-set instance NIC or a NIC that cannot be found.
 * @throws {AzureHttpError} When IMDS fails.
 *
 * @tags allow-net, allow-env, allow-read
 *
 * @example Usage
 * ```ts ignore
 * const nic = await openNic({});
 * const model = await nic.get();
 * ```
 */
export async function openNic(options: OpenNicOptions): Promise<ArmNic> {
  const progress = options.progress ?? (() => {});
  let ref: NicRef | undefined = options.nicId === undefined
    ? undefined
    : parseNicId(options.nicId);
  let discover: { vmId: string; mac: string; rg: string } | undefined;
  if (ref === undefined) {
    progress("Reading instance metadata");
    const inst = await getImdsInstance({ baseUrl: options.imdsUrl });
    if (
      inst.compute.vmScaleSetName !== "" ||
      VMSS_RE.test(inst.compute.resourceId)
    ) {
      throw vmssError("the NIC of VM", inst.compute.resourceId);
    }
    const mac = inst.network[0]?.macAddress;
    if (mac === undefined) {
      throw new Error("Cannot find the VM's NIC: IMDS lists no interface");
    }
    discover = {
      vmId: inst.compute.resourceId,
      mac,
      rg: inst.compute.resourceGroupName,
    };
    ref = {
      subscriptionId: inst.compute.subscriptionId,
      resourceGroup: discover.rg,
      name: "",
    };
  }

  progress("Loading the Azure SDK");
  const { NetworkManagementClient } = await import("@azure/arm-network");
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const clientOptions: {
    endpoint?: string;
    tlsOptions?: { ca: string };
    retryOptions?: { maxRetries: number };
  } = {};
  if (options.armEndpoint !== undefined) {
    clientOptions.endpoint = options.armEndpoint;
  }
  if (options.caFile !== undefined) {
    clientOptions.tlsOptions = { ca: await Deno.readTextFile(options.caFile) };
  }
  if (options.maxRetries !== undefined) {
    clientOptions.retryOptions = { maxRetries: options.maxRetries };
  }
  const credential = new ManagedIdentityCredential(
    options.maxRetries === undefined
      ? {}
      : { retryOptions: { maxRetries: options.maxRetries } },
  );
  const client = new NetworkManagementClient(
    credential,
    ref.subscriptionId,
    clientOptions,
  );
  // A second client whose GETs retry: the update's polls, `get({ retry })`.
  const readRetries = options.readRetries ??
    (options.maxRetries === undefined ? 0 : 3);
  let sure = client;
  // The call the retrying client serves (calls on one NIC run one at a time).
  let serving: "get" | "update" = "get";
  if (readRetries > 0) {
    sure = new NetworkManagementClient(
      credential,
      ref.subscriptionId,
      clientOptions,
    );
    const onRetry = options.onRetry;
    sure.pipeline.addPolicy(
      readRetryPolicy({
        retries: readRetries,
        ...(onRetry === undefined
          ? {}
          : { onRetry: (a) => onRetry({ operation: serving, ...a }) }),
      }),
      { phase: "Retry" },
    );
  }
  const nics = client.networkInterfaces;

  if (discover !== undefined) {
    const { vmId, mac, rg } = discover;
    progress(`Finding the NIC of ${vmId} (MAC ${mac}) in ${rg}`);
    let found: string | undefined;
    for await (const nic of nics.list(rg)) {
      let nicMac = "";
      try {
        nicMac = azureMac(nic.macAddress ?? "");
      } catch {
        continue;
      }
      if (
        (nic.virtualMachine?.id ?? "").toLowerCase() === vmId.toLowerCase() &&
        nicMac === mac && nic.name !== undefined
      ) {
        found = nic.name;
        break;
      }
    }
    if (found === undefined) {
      throw new Error(
        `Cannot find the NIC of VM "${vmId}" with MAC ${mac} in resource group "${rg}"`,
      );
    }
    ref = { ...ref, name: found };
  }
  const bound = ref;
  return {
    ref: bound,
    async get(getOptions = {}) {
      const via = getOptions.retry === true ? sure : client;
      serving = "get";
      return await via.networkInterfaces.get(
        bound.resourceGroup,
        bound.name,
      ) as NicModel;
    },
    async update(current, change) {
      const body = ipConfigUpdateBody(current, change);
      const etag = typeof current.etag === "string" ? current.etag : undefined;
      serving = "update";
      const poller = sure.networkInterfaces.createOrUpdate(
        bound.resourceGroup,
        bound.name,
        body as Parameters<typeof nics.createOrUpdate>[2],
        {
          updateIntervalInMs: options.pollIntervalMs ?? 1000,
          // The SDK has no ifMatch option for this operation.
          ...(etag === undefined
            ? {}
            : { requestOptions: { headers: { "if-match": etag } } }),
        },
      );
      try {
        return await poller.pollUntilDone() as NicModel;
      } catch (err) {
        const e = err as { name?: unknown; statusCode?: unknown } | null;
        if (e?.statusCode === 412 && etag !== undefined) {
          throw new ArmConflictError(bound.name, { etag, cause: err });
        }
        // ARM reported the operation failed: a plain Error, no status (a
        // failed poll also fails the poller, but with the RestError).
        if (
          poller.operationState?.status === "failed" &&
          e?.name !== "RestError" && e?.statusCode === undefined
        ) {
          throw new ArmOperationError(bound.name, { cause: err });
        }
        throw err;
      }
    },
  };
}
