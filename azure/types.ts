/**
 * The host's view of its NICs, as the wireserver (NMAgent) and IMDS report
 * it, in one normalised shape.
 *
 * @module
 */

/** One address of an IP subnet on a NIC. */
export interface HostIpAddress {
  /** Dotted quad (or IPv6 text). */
  readonly address: string;
  /** True for the NIC's primary address: never allocatable. */
  readonly isPrimary: boolean;
}

/** One subnet of a NIC with its addresses. */
export interface HostIpSubnet {
  /** CIDR, for example `10.240.0.0/16`. */
  readonly prefix: string;
  readonly addresses: readonly HostIpAddress[];
}

/** One NIC as the host reports it. */
export interface HostInterface {
  /**
   * MAC, normalised to 12 lower-case hex digits without separators, or `"*"`
   * (the NMAgent test wildcard).
   */
  readonly macAddress: string;
  /** True for the VM's primary NIC. */
  readonly isPrimary: boolean;
  readonly subnets: readonly HostIpSubnet[];
}
