/**
 * The emulated Azure world: subscriptions, resource groups and VMs, each VM
 * with one NIC in one subnet. Plain JSON, so another process can read it
 * from the state file.
 *
 * A subnet may have an IPv6 prefix besides its IPv4 one (dual-stack, #15):
 * then the NIC may hold IPv6 ipconfigs too. A world without IPv6 writes
 * exactly the JSON it wrote before IPv6 existed.
 *
 * @module
 */
import {
  azureMac,
  formatIpv4,
  host,
  parseCidr,
  parseIpv4,
} from "@vnet/address";

/** ARM's `privateIPAddressVersion` of an ipconfig. */
export type IpVersion = "IPv4" | "IPv6";

/** One IP configuration of an emulated NIC. */
export interface EmulatorIpConfig {
  name: string;
  /** Absent while a dynamic address is pending. */
  privateIPAddress?: string | undefined;
  /** Absent for IPv4 (as in every state written before IPv6). */
  privateIPAddressVersion?: IpVersion | undefined;
  /** Only ever true for one IPv4 ipconfig (ARM's rule). */
  primary: boolean;
  allocation: "Dynamic" | "Static";
}

/** A NIC's subnet: its IPv4 prefix and, for dual-stack, its IPv6 prefix. */
export interface EmulatorSubnet {
  id: string;
  /** The IPv4 prefix, such as `10.240.0.0/16`. */
  prefix: string;
  /** The IPv6 prefix (Azure gives a subnet a /64), such as `fd00:10:240::/64`. */
  ipv6Prefix?: string | undefined;
}

/** The single NIC of an emulated VM. */
export interface EmulatorNic {
  name: string;
  /** 12 upper-case hex digits, as the wireserver writes it. */
  macAddress: string;
  subnet: EmulatorSubnet;
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
  /**
   * Default `10.240.0.0/16` with a derived subnet id; `ipv6Prefix` makes it
   * dual-stack.
   */
  subnet?:
    | {
      prefix: string;
      ipv6Prefix?: string | undefined;
      id?: string | undefined;
    }
    | undefined;
  /** IPv4 IP configurations to create (default 1: the primary). */
  ipConfigCount?: number | undefined;
  /**
   * IPv6 IP configurations to create (`ipv6config1..K`, after the IPv4 ones;
   * default 0). Needs `subnet.ipv6Prefix`.
   */
  ipv6ConfigCount?: number | undefined;
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

/** The host number of the first address Azure hands out (0-3 are its own). */
const FIRST_HOST = 4;

/**
 * The usable host numbers of an IPv6 subnet as Azure sees it: host 0 (the
 * subnet-router anycast address), 1 (gateway), 2 and 3 (reserved like the
 * IPv4 .2 and .3) and the last address are never handed out.
 *
 * @param prefix IPv6 CIDR such as `fd00:10:240::/64`.
 * @returns First and last assignable host numbers (capped at 2^53-1).
 * @throws {SyntaxError} When the CIDR does not parse or is not IPv6.
 * @throws {RangeError} When the prefix is shorter than /64 or longer than
 *   /124 (Azure uses /64; longer ones let tests fill a subnet).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { usableRange6 } from "./state.ts";
 *
 * assert.deepEqual(usableRange6("fd00::/120"), { first: 4, last: 254 });
 * ```
 */
export function usableRange6(prefix: string): { first: number; last: number } {
  const cidr = parseCidr(prefix);
  if (cidr.family !== 6) {
    throw new SyntaxError(`Cannot use "${prefix}" as an IPv6 subnet`);
  }
  if (cidr.prefix < 64 || cidr.prefix > 124) {
    throw new RangeError(
      `Cannot use IPv6 subnet "${prefix}": length must be 64..124`,
    );
  }
  const size = 2 ** (128 - cidr.prefix);
  return {
    first: FIRST_HOST,
    last: Math.min(size - 2, Number.MAX_SAFE_INTEGER),
  };
}

/**
 * Picks the lowest free address of a subnet, Azure-style, in the subnet's
 * family (IPv6 addresses in canonical text).
 *
 * @param prefix The subnet CIDR, IPv4 or IPv6.
 * @param used Addresses already taken (the pick is added to it).
 * @returns The address, or undefined when the subnet is full.
 * @throws {SyntaxError} When the CIDR does not parse.
 * @throws {RangeError} When the prefix length is out of range.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { allocateAddress } from "./state.ts";
 *
 * assert.equal(allocateAddress("fd00:10:240::/64", new Set(["fd00:10:240::4"])), "fd00:10:240::5");
 * ```
 */
export function allocateAddress(
  prefix: string,
  used: Set<string>,
): string | undefined {
  const v6 = parseCidr(prefix).family === 6;
  const { first, last } = v6 ? usableRange6(prefix) : usableRange(prefix);
  for (let n = first; n <= last; n++) {
    const ip = v6 ? host(prefix, n) : formatIpv4(n);
    if (!used.has(ip)) {
      used.add(ip);
      return ip;
    }
  }
  return undefined;
}

/**
 * The version of an ipconfig (absent means IPv4).
 *
 * @param config The ipconfig.
 * @returns `"IPv4"` or `"IPv6"`.
 */
export function ipVersionOf(config: EmulatorIpConfig): IpVersion {
  return config.privateIPAddressVersion === "IPv6" ? "IPv6" : "IPv4";
}

/**
 * A NIC's assigned ipconfigs of one version: IPv4 with the primary first,
 * IPv6 in the NIC's order (its first is the node's own IPv6 address). What
 * IMDS, the wireserver and the sandbox's fabric all list.
 *
 * @param vm The VM.
 * @param version The ipconfig version.
 * @returns The ipconfigs that have an address.
 */
export function assigned(
  vm: EmulatorVm,
  version: IpVersion,
): (EmulatorIpConfig & { privateIPAddress: string })[] {
  const configs = vm.nic.ipConfigurations.filter((
    c,
  ): c is EmulatorIpConfig & { privateIPAddress: string } =>
    c.privateIPAddress !== undefined && ipVersionOf(c) === version
  );
  return version === "IPv4"
    ? configs.sort((a, b) => Number(b.primary) - Number(a.primary))
    : configs;
}

/**
 * The prefix a NIC's ipconfigs of one version take addresses from.
 *
 * @param subnet The NIC's subnet.
 * @param version The ipconfig version.
 * @returns The prefix, or undefined for IPv6 in a subnet without one.
 */
export function prefixOf(
  subnet: EmulatorSubnet,
  version: IpVersion,
): string | undefined {
  return version === "IPv6" ? subnet.ipv6Prefix : subnet.prefix;
}

function normalizeCidr(prefix: string): string {
  const c = parseCidr(prefix);
  return `${c.ip}/${c.prefix}`;
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
  const ipv6Prefix = spec.subnet?.ipv6Prefix;
  const subnetId = spec.subnet?.id ??
    `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroupName}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/subnet`;
  const mac = azureMac(spec.macAddress ?? randomMac()).toUpperCase();
  const count = spec.ipConfigCount ?? 1;
  const count6 = spec.ipv6ConfigCount ?? 0;
  if (ipv6Prefix !== undefined) usableRange6(ipv6Prefix);
  if (count6 > 0 && ipv6Prefix === undefined) {
    throw new RangeError(
      `Cannot add VM "${spec.name}": IPv6 ipconfigs need subnet.ipv6Prefix`,
    );
  }
  const used = usedAddresses(state, subnetId);
  const ipConfigurations: EmulatorIpConfig[] = [];
  const families: [string, number, IpVersion][] = [
    [prefix, count, "IPv4"],
    [ipv6Prefix ?? "", count6, "IPv6"],
  ];
  for (const [from, n, version] of families) {
    for (let k = 1; k <= n; k++) {
      const ip = allocateAddress(from, used);
      if (ip === undefined) {
        throw new RangeError(`Cannot add VM "${spec.name}": subnet is full`);
      }
      ipConfigurations.push(
        version === "IPv4"
          ? {
            name: `ipconfig${k}`,
            privateIPAddress: ip,
            primary: k === 1,
            allocation: "Dynamic",
          }
          : {
            name: `ipv6config${k}`,
            privateIPAddress: ip,
            privateIPAddressVersion: "IPv6",
            primary: false,
            allocation: "Dynamic",
          },
      );
    }
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
      subnet: ipv6Prefix === undefined
        ? { id: subnetId, prefix }
        : { id: subnetId, prefix, ipv6Prefix: normalizeCidr(ipv6Prefix) },
      ipConfigurations,
      etag: `W/"${crypto.randomUUID()}"`,
      provisioningState: "Succeeded",
    },
  };
  state.vms.push(vm);
  return vm;
}
