/**
 * The sandbox's side of the Azure emulator (`./emulator/`): seed its state,
 * start it inside the fabric netns on the documented addresses, read its ARM
 * view back, stop it. The only file that knows the emulator's CLI and state
 * format.
 *
 * @module
 */
import { kernelMac } from "@vnet/address";
import { execIn } from "./_run.ts";
import { processAlive, stopProcess } from "../testbed/mod.ts";

export { processAlive };
import {
  addVm,
  assigned,
  emptyState,
  type EmulatorState,
} from "./emulator/state.ts";

/** A NIC from the ARM state, as the fabric needs it. */
export interface ArmNic {
  /** NIC name. */
  readonly name: string;
  /** MAC, Linux form. */
  readonly mac: string;
  /** IPv4 ipconfig addresses, primary first. */
  readonly ips: readonly string[];
  /**
   * IPv6 ipconfig addresses in the NIC's order (the first is the node's
   * own, as IMDS lists it first); empty for an IPv4-only NIC.
   */
  readonly ipv6s: readonly string[];
}

/** A running emulator. */
export interface EmulatorHandle {
  /** Its pid (the deno process inside the fabric netns). */
  readonly pid: number;
  /** Its state file. */
  readonly stateFile: string;
  /** The CA certificate for ARM's TLS. */
  readonly caFile: string;
  /** The ARM endpoint nodes use. */
  readonly armEndpoint: string;
}

/** The sandbox's emulator process entry. */
export const EMULATOR_MAIN = new URL("./_emulator_proc.ts", import.meta.url)
  .pathname;

/** One node's VM as seeded. */
export interface SeededVm {
  /** VM name. */
  readonly name: string;
  /** NIC name. */
  readonly nicName: string;
  /** NIC MAC, Linux form. */
  readonly mac: string;
  /** The primary address ARM assigned. */
  readonly primaryIp: string;
  /**
   * The node's IPv6 address (its NIC's one IPv6 ipconfig), when seeded with
   * an `ipv6Subnet`.
   */
  readonly primaryIpv6?: string;
}

/** What {@linkcode seedEmulatorState} seeds. */
export interface SeedOptions {
  /** The subnet's IPv4 prefix, such as `10.240.0.0/16`. */
  readonly subnet: string;
  /**
   * The subnet's IPv6 prefix (dual-stack), such as `fd00:10:240::/64`:
   * every NIC then gets one IPv6 ipconfig too.
   */
  readonly ipv6Subnet?: string | undefined;
  /** One VM per node. */
  readonly vmNames: readonly string[];
}

/**
 * Writes the emulator's initial state: one VM per node, each with one NIC
 * holding its primary ipconfig only (ARM assigns the address), plus one
 * IPv6 ipconfig when `ipv6Subnet` is given.
 *
 * @param stateFile The emulator state file.
 * @param options The subnet, the IPv6 subnet (dual-stack) and the VM names.
 * @returns The VMs with their MACs and primary addresses.
 * @throws {RangeError} When a subnet is too small or `ipv6Subnet` is not an
 *   IPv6 /64../124.
 */
export async function seedEmulatorState(
  stateFile: string,
  options: SeedOptions,
): Promise<SeededVm[]> {
  const state = emptyState();
  const out: SeededVm[] = [];
  const v6 = options.ipv6Subnet;
  for (const name of options.vmNames) {
    const vm = addVm(state, {
      name,
      subnet: { prefix: options.subnet, ipv6Prefix: v6 },
      ipConfigCount: 1,
      ipv6ConfigCount: v6 === undefined ? 0 : 1,
    });
    const [primary, ipv6] = vm.nic.ipConfigurations;
    const seeded: SeededVm = {
      name,
      nicName: vm.nic.name,
      mac: kernelMac(vm.nic.macAddress),
      primaryIp: primary?.privateIPAddress ?? "",
    };
    out.push(
      ipv6?.privateIPAddress === undefined
        ? seeded
        : { ...seeded, primaryIpv6: ipv6.privateIPAddress },
    );
  }
  await Deno.writeTextFile(stateFile, JSON.stringify(state, null, 2) + "\n");
  return out;
}

/**
 * Starts the emulator inside the fabric netns, listening on every address
 * there (168.63.129.16 and 169.254.169.254 on port 80, ARM on 443), and
 * waits until it listens.
 *
 * @param fabricNetns The fabric netns.
 * @param options The state file and the directory for the CA and log.
 * @returns The handle.
 * @throws {Error} When it does not listen within 15 s.
 */
export async function startEmulator(
  fabricNetns: string,
  options: { stateFile: string; dir: string },
): Promise<EmulatorHandle> {
  const caFile = `${options.dir}/tls/ca.pem`;
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      fabricNetns,
      Deno.execPath(),
      "run",
      "-A",
      EMULATOR_MAIN,
      options.stateFile,
      `${options.dir}/tls`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  child.unref();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const ss = await execIn(fabricNetns, ["ss", "-Hltn"], { check: false });
    if (/:80\s/.test(ss.stdout) && /:443\s/.test(ss.stdout)) {
      return {
        pid: child.pid,
        stateFile: options.stateFile,
        caFile,
        armEndpoint: "https://168.63.129.16:443",
      };
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `Cannot start the emulator in "${fabricNetns}": not listening after 15 s`,
  );
}

/**
 * Reads the emulator's ARM view: every NIC with its MAC and ipconfigs.
 *
 * @param stateFile The emulator state file.
 * @returns The NICs.
 */
export async function readArmNics(stateFile: string): Promise<ArmNic[]> {
  const state = JSON.parse(
    await Deno.readTextFile(stateFile),
  ) as EmulatorState;
  return state.vms.map((vm) => ({
    name: vm.nic.name,
    mac: kernelMac(vm.nic.macAddress),
    ips: assigned(vm, "IPv4").map((c) => c.privateIPAddress),
    ipv6s: assigned(vm, "IPv6").map((c) => c.privateIPAddress),
  }));
}

/**
 * Stops the emulator (SIGTERM, then SIGKILL after 3 s) and waits for it.
 *
 * @param pid The emulator pid.
 * @returns True when it is gone.
 */
export function stopEmulator(pid: number): Promise<boolean> {
  return stopProcess(pid, { graceMs: 3000 });
}
