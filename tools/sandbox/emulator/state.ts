/**
 * The emulated Azure world: subscriptions, resource groups and VMs, each VM
 * with one NIC in one subnet. Plain JSON, so another process can read it
 * from the state file.
 *
 * @module
 */
import { azureMac, formatIpv4, parseIpv4 } from "@vnet/address";

/** One IP configuration of an emulated NIC. */
export interface EmulatorIpConfig {
  name: string;
  /** Absent while a dynamic address is pending. */
  privateIPAddress?: string | undefined;
  primary: boolean;
  allocation: "Dynamic" | "Static";
}

/** The single NIC of an emulated VM. */
export interface EmulatorNic {
  name: string;
  /** 12 upper-case hex digits, as the wireserver writes it. */
  macAddress: string;
  subnet: { id: string; prefix: string };
  ipConfigurations: EmulatorIpConfig[];
  etag: string;
  provisioningState: "Succeeded" | "Updating" | "Failed";
}

/** An emulated VM (or uniform scale-set instance when vmScaleSetName is set). */
export interface EmulatorVm {
  name: string;
  subscriptionId: string;
  resourceGroupName: string;
  location: string;
  /** Empty for a plain VM. For an instance, `name` is its instance id. */
  vmScaleSetName: string;
  nic: EmulatorNic;
}

/** The whole emulated world. */
export interface EmulatorState {
  version: 1;
  vms: EmulatorVm[];
}

/** What {@linkcode addVm} needs; everything but `name` has a default. */
export interface AddVmSpec {
  name: string;
  subscriptionId?: string | undefined;
  resourceGroupName?: string | undefined;
  location?: string | undefined;
  vmScaleSetName?: string | undefined;
  nicName?: string | undefined;
  /** Any MAC form; default random `000D3A…`. */
  macAddress?: string | undefined;
  /** Default `10.240.0.0/16` with a derived subnet id. */
  subnet?: { prefix: string; id?: string | undefined } | undefined;
  /** IP configurations to create (default 1: the primary). */
  ipConfigCount?: number | undefined;
}

/** Default subscription of emulated VMs. */
export const DEFAULT_SUBSCRIPTION = "9b8218f9-902a-4d20-a65c-e98acec5362f";

/**
 * Creates an empty world.
 *
 * @returns `{ version: 1, vms: [] }`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { addVm, emptyState } from "./state.ts";
 *
 * const state = emptyState();
 * const vm = addVm(state, { name: "vm0", ipConfigCount: 2 });
 * assert.deepEqual(vm.nic.ipConfigurations.map((c) => c.privateIPAddress), ["10.240.0.4", "10.240.0.5"]);
 * ```
 */
export function emptyState(): EmulatorState {
  return { version: 1, vms: [] };
}

/**
 * The ARM id of a VM (or scale-set instance).
 *
 * @param vm The VM.
 * @returns `/subscriptions/…/providers/Microsoft.Compute/virtualMachines/…`.
 */
export function vmResourceId(vm: EmulatorVm): string {
  const rg =
    `/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroupName}`;
  return vm.vmScaleSetName === ""
    ? `${rg}/providers/Microsoft.Compute/virtualMachines/${vm.name}`
    : `${rg}/providers/Microsoft.Compute/virtualMachineScaleSets/${vm.vmScaleSetName}/virtualMachines/${vm.name}`;
}

/**
 * The ARM id of a VM's NIC (scale-set NICs live under the instance).
 *
 * @param vm The VM.
 * @returns The NIC id.
 */
export function nicResourceId(vm: EmulatorVm): string {
  if (vm.vmScaleSetName !== "") {
    return `${vmResourceId(vm)}/networkInterfaces/${vm.nic.name}`;
  }
  return `/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroupName}/providers/Microsoft.Network/networkInterfaces/${vm.nic.name}`;
}

/**
 * The usable range of a subnet as Azure sees it: the network address, .1
 * (gateway), .2 and .3 (DNS) and the broadcast address are reserved.
 *
 * @param prefix CIDR such as `10.240.0.0/16`.
 * @returns First and last assignable host, as numbers.
 * @throws {SyntaxError} When the CIDR does not parse.
 * @throws {RangeError} When the prefix is longer than /29.
 */
export function usableRange(prefix: string): { first: number; last: number } {
  const [base, lenText] = prefix.split("/");
  const len = Number(lenText);
  if (base === undefined || !Number.isInteger(len)) {
    throw new SyntaxError(`Cannot parse subnet "${prefix}"`);
  }
  if (len < 8 || len > 29) {
    throw new RangeError(`Cannot use subnet "${prefix}": length must be 8..29`);
  }
  const size = 2 ** (32 - len);
  const network = Math.floor(parseIpv4(base) / size) * size;
  return { first: network + 4, last: network + size - 2 };
}

/**
 * Addresses in use in a subnet, over every NIC of the world.
 *
 * @param state The world.
 * @param subnetId The subnet's ARM id (compared case-insensitively).
 * @returns The set of addresses.
 */
export function usedAddresses(
  state: EmulatorState,
  subnetId: string,
): Set<string> {
  const used = new Set<string>();
  for (const vm of state.vms) {
    if (vm.nic.subnet.id.toLowerCase() !== subnetId.toLowerCase()) continue;
    for (const c of vm.nic.ipConfigurations) {
      if (c.privateIPAddress !== undefined) used.add(c.privateIPAddress);
    }
  }
  return used;
}

/**
 * Picks the lowest free address of a subnet, Azure-style.
 *
 * @param prefix The subnet CIDR.
 * @param used Addresses already taken (the pick is added to it).
 * @returns The address, or undefined when the subnet is full.
 */
export function allocateAddress(
  prefix: string,
  used: Set<string>,
): string | undefined {
  const { first, last } = usableRange(prefix);
  for (let n = first; n <= last; n++) {
    const ip = formatIpv4(n);
    if (!used.has(ip)) {
      used.add(ip);
      return ip;
    }
  }
  return undefined;
}

function randomMac(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return "000D3A" +
    [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("")
      .toUpperCase();
}

/**
 * Adds a VM with one NIC, allocating its addresses dynamically.
 *
 * @param state The world (mutated).
 * @param spec Name plus optional subscription, group, location, scale set,
 *   NIC name, MAC, subnet and IP configuration count.
 * @returns The new VM.
 * @throws {Deno.errors.AlreadyExists} When a VM of that name exists in the
 *   group.
 * @throws {RangeError} When the subnet has too few free addresses.
 */
export function addVm(state: EmulatorState, spec: AddVmSpec): EmulatorVm {
  const subscriptionId = spec.subscriptionId ?? DEFAULT_SUBSCRIPTION;
  const resourceGroupName = spec.resourceGroupName ?? "vnet-rg";
  if (
    state.vms.some((vm) =>
      vm.name === spec.name &&
      vm.resourceGroupName.toLowerCase() === resourceGroupName.toLowerCase()
    )
  ) {
    throw new Deno.errors.AlreadyExists(
      `Cannot add VM "${spec.name}": it exists`,
    );
  }
  const prefix = spec.subnet?.prefix ?? "10.240.0.0/16";
  const subnetId = spec.subnet?.id ??
    `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroupName}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/subnet`;
  const mac = azureMac(spec.macAddress ?? randomMac()).toUpperCase();
  const count = spec.ipConfigCount ?? 1;
  const used = usedAddresses(state, subnetId);
  const ipConfigurations: EmulatorIpConfig[] = [];
  for (let k = 1; k <= count; k++) {
    const ip = allocateAddress(prefix, used);
    if (ip === undefined) {
      throw new RangeError(`Cannot add VM "${spec.name}": subnet is full`);
    }
    ipConfigurations.push({
      name: `ipconfig${k}`,
      privateIPAddress: ip,
      primary: k === 1,
      allocation: "Dynamic",
    });
  }
  const vm: EmulatorVm = {
    name: spec.name,
    subscriptionId,
    resourceGroupName,
    location: spec.location ?? "westus2",
    vmScaleSetName: spec.vmScaleSetName ?? "",
    nic: {
      name: spec.nicName ?? `${spec.name}-nic`,
      macAddress: mac,
      subnet: { id: subnetId, prefix },
      ipConfigurations,
      etag: `W/"${crypto.randomUUID()}"`,
      provisioningState: "Succeeded",
    },
  };
  state.vms.push(vm);
  return vm;
}
