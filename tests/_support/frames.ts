/**
 * Raw Ethernet frames for the privileged tests: a packet socket bound to
 * one interface of a namespace the test made, to send frames no tool on
 * the test machine crafts (a spoofed ARP reply, a frame with another pod's
 * source MAC, an IPv6 router advertisement) and to capture what arrives
 * (a reflected broadcast). Builders for those frames and a reader of ARP.
 *
 * The packet socket is libc's, opened here with `Deno.dlopen` (product
 * code reaches native code only through `netlink/`; this is test-only).
 * The socket is made inside the namespace ({@link withNetns}) and stays
 * bound to it; it is non-blocking, so reads never hold the test's thread.
 *
 * Requires root (CAP_NET_RAW, CAP_SYS_ADMIN to enter the namespace).
 *
 * @module
 */
import { formatMac, parseIpv4, parseMac } from "@vnet/address";
import { withNetns } from "@vnet/netlink";
import { parseIpValue } from "../../netlink/address/_value.ts";

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const ETH_P_ALL = 0x0003;
const SOL_PACKET = 263;
const PACKET_IGNORE_OUTGOING = 23;
const EAGAIN = 11;
/** `DataView`'s little-endian flag: the host order of x86_64. */
const HOST_ORDER = true;

/** The libc symbols a packet socket needs. */
const SYMBOLS = {
  /** `int socket(int domain, int type, int protocol)` */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** `int bind(int fd, const struct sockaddr *addr, socklen_t len)` */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** `int setsockopt(int fd, int level, int name, const void *v, socklen_t len)` */
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  /** `unsigned int if_nametoindex(const char *name)` */
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  /** `ssize_t read(int fd, void *buf, size_t n)` */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** `ssize_t write(int fd, const void *buf, size_t n)` */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** `int close(int fd)` */
  close: { parameters: ["i32"], result: "i32" },
  /** `int *__errno_location(void)` */
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;

function libc(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  lib ??= Deno.dlopen("libc.so.6", SYMBOLS);
  return lib.symbols;
}

function errno(): number {
  const ptr = libc().__errno_location();
  return ptr === null ? 0 : new Deno.UnsafePointerView(ptr).getInt32();
}

function htons(n: number): number {
  return ((n & 0xff) << 8) | ((n >> 8) & 0xff);
}

/**
 * A packet socket on one interface of a namespace: every frame the
 * interface receives (not those it sends), and frames written as given.
 */
export class PacketSocket implements Disposable {
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * Opens a packet socket on `ifName` inside the namespace at `netnsPath`.
   *
   * @param netnsPath Such as `/var/run/netns/cnitest-k3j9a`.
   * @param ifName The interface.
   * @returns The socket.
   * @throws {Error} When a libc call fails.
   */
  static open(netnsPath: string, ifName: string): PacketSocket {
    const c = libc();
    const fd = withNetns(netnsPath, () => {
      const index = c.if_nametoindex(new TextEncoder().encode(`${ifName}\0`));
      if (index === 0) throw new Error(`No interface "${ifName}"`);
      const s = c.socket(
        AF_PACKET,
        SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
        htons(ETH_P_ALL),
      );
      if (s < 0) throw new Error(`socket(AF_PACKET) failed: errno ${errno()}`);
      const addr = new Uint8Array(20);
      const v = new DataView(addr.buffer);
      // struct sockaddr_ll: family and ifindex in host order (x86_64:
      // little-endian), the protocol in network order.
      v.setUint16(0, AF_PACKET, HOST_ORDER);
      v.setUint16(2, ETH_P_ALL);
      v.setInt32(4, index, HOST_ORDER);
      const on = new Uint8Array(new Int32Array([1]).buffer);
      if (
        c.bind(s, addr, addr.length) < 0 ||
        c.setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, on, 4) < 0
      ) {
        const code = errno();
        c.close(s);
        throw new Error(
          `Cannot bind a packet socket to "${ifName}": errno ${code}`,
        );
      }
      return s;
    });
    return new PacketSocket(fd);
  }

  /**
   * Sends one frame out of the interface, as given.
   *
   * @param frame The Ethernet frame.
   * @throws {Error} When the write fails.
   */
  send(frame: Uint8Array): void {
    const n = Number(libc().write(this.#fd, frame, BigInt(frame.length)));
    if (n !== frame.length) throw new Error(`write failed: errno ${errno()}`);
  }

  /**
   * The frames received since the last call, waiting `ms` first.
   *
   * @param ms How long to wait for frames to arrive.
   * @returns The frames, oldest first.
   */
  async received(ms: number): Promise<Uint8Array[]> {
    await new Promise((r) => setTimeout(r, ms));
    const out: Uint8Array[] = [];
    const buf = new Uint8Array(2048);
    for (;;) {
      const n = Number(libc().read(this.#fd, buf, BigInt(buf.length)));
      if (n < 0) {
        const code = errno();
        if (code === EAGAIN) return out;
        throw new Error(`read failed: errno ${code}`);
      }
      out.push(buf.slice(0, n));
    }
  }

  /** Closes the socket (idempotent). */
  [Symbol.dispose](): void {
    if (this.#fd < 0) return;
    libc().close(this.#fd);
    this.#fd = -1;
  }
}

function ipv4Bytes(ip: string): Uint8Array {
  const n = parseIpv4(ip);
  return new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

function ipv6Bytes(ip: string): Uint8Array {
  let v = parseIpValue(ip).value;
  const out = new Uint8Array(16);
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/**
 * An Ethernet frame.
 *
 * @param head Destination and source MAC, EtherType.
 * @param payload What follows the header.
 * @returns The frame.
 */
export function ethernet(
  head: { dst: string; src: string; type: number },
  payload: Uint8Array,
): Uint8Array {
  const f = new Uint8Array(14 + payload.length);
  f.set(parseMac(head.dst), 0);
  f.set(parseMac(head.src), 6);
  new DataView(f.buffer).setUint16(12, head.type);
  f.set(payload, 14);
  return f;
}

/** The fields of an Ethernet/IPv4 ARP packet. */
export interface Arp {
  /** 1 request, 2 reply. */
  readonly op: 1 | 2;
  /** Sender MAC. */
  readonly sha: string;
  /** Sender IPv4 address. */
  readonly spa: string;
  /** Target MAC. */
  readonly tha: string;
  /** Target IPv4 address. */
  readonly tpa: string;
}

/**
 * An ARP frame, broadcast unless `dst` says otherwise; the Ethernet source
 * is the sender MAC unless `src` says otherwise.
 *
 * @param arp The ARP fields.
 * @param head Other Ethernet addresses.
 * @returns The frame.
 */
export function arpFrame(
  arp: Arp,
  head: { dst?: string; src?: string } = {},
): Uint8Array {
  const p = new Uint8Array(28);
  const v = new DataView(p.buffer);
  v.setUint16(0, 1);
  v.setUint16(2, 0x0800);
  p[4] = 6;
  p[5] = 4;
  v.setUint16(6, arp.op);
  p.set(parseMac(arp.sha), 8);
  p.set(ipv4Bytes(arp.spa), 14);
  p.set(parseMac(arp.tha), 18);
  p.set(ipv4Bytes(arp.tpa), 24);
  return ethernet({
    dst: head.dst ?? "ff:ff:ff:ff:ff:ff",
    src: head.src ?? arp.sha,
    type: 0x0806,
  }, p);
}

/**
 * Reads an Ethernet/IPv4 ARP frame.
 *
 * @param frame A received frame.
 * @returns Its ARP fields and Ethernet source, or undefined for another
 * frame.
 */
export function readArp(
  frame: Uint8Array,
): (Arp & { ethSrc: string }) | undefined {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (frame.length < 42 || v.getUint16(12) !== 0x0806) return undefined;
  const ip = (at: number) => [...frame.subarray(at, at + 4)].join(".");
  const op = v.getUint16(20);
  if (op !== 1 && op !== 2) return undefined;
  return {
    op,
    sha: formatMac(frame.subarray(22, 28)),
    spa: ip(28),
    tha: formatMac(frame.subarray(32, 38)),
    tpa: ip(38),
    ethSrc: formatMac(frame.subarray(6, 12)),
  };
}

/** The Internet checksum of ICMPv6 over its IPv6 pseudo-header. */
function icmpv6Checksum(
  src: Uint8Array,
  dst: Uint8Array,
  body: Uint8Array,
): number {
  const pseudo = new Uint8Array(40 + body.length + (body.length % 2));
  pseudo.set(src, 0);
  pseudo.set(dst, 16);
  new DataView(pseudo.buffer).setUint32(32, body.length);
  pseudo[39] = 58;
  pseudo.set(body, 40);
  let sum = 0;
  const v = new DataView(pseudo.buffer);
  for (let i = 0; i < pseudo.length; i += 2) sum += v.getUint16(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * An IPv6 router advertisement to all nodes (`ff02::1`) announcing an
 * on-link, autonomous `/64` prefix and a default route (router lifetime
 * 1800 s), as a router on the fabric would send it.
 *
 * @param router The router's MAC and its link-local address.
 * @param prefix The `/64` prefix, such as `2001:db8:77::`.
 * @returns The frame.
 */
export function routerAdvertisement(
  router: { mac: string; linkLocal: string },
  prefix: string,
): Uint8Array {
  const body = new Uint8Array(16 + 32 + 8);
  const v = new DataView(body.buffer);
  body[0] = 134; // router advertisement, code 0
  body[4] = 64; // cur hop limit
  v.setUint16(6, 1800); // router lifetime
  // Prefix information: on-link and autonomous.
  body[16] = 3;
  body[17] = 4;
  body[18] = 64;
  body[19] = 0xc0;
  v.setUint32(20, 86400);
  v.setUint32(24, 14400);
  body.set(ipv6Bytes(prefix), 32);
  // Source link-layer address.
  body[48] = 1;
  body[49] = 1;
  body.set(parseMac(router.mac), 50);
  const src = ipv6Bytes(router.linkLocal);
  const dst = ipv6Bytes("ff02::1");
  v.setUint16(2, icmpv6Checksum(src, dst, body));
  const ip6 = new Uint8Array(40 + body.length);
  const h = new DataView(ip6.buffer);
  h.setUint32(0, 0x60000000);
  h.setUint16(4, body.length);
  ip6[6] = 58;
  ip6[7] = 255;
  ip6.set(src, 8);
  ip6.set(dst, 24);
  ip6.set(body, 40);
  return ethernet(
    { dst: "33:33:00:00:00:01", src: router.mac, type: 0x86dd },
    ip6,
  );
}

/**
 * Reads the addresses of an IPv4 frame.
 *
 * @param frame A received frame.
 * @returns Its source and destination, or undefined for another frame.
 */
export function readIpv4(
  frame: Uint8Array,
): { src: string; dst: string } | undefined {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (frame.length < 34 || v.getUint16(12) !== 0x0800) return undefined;
  const ip = (at: number) => [...frame.subarray(at, at + 4)].join(".");
  return { src: ip(26), dst: ip(30) };
}

/**
 * Tells whether a frame is an IPv6 router advertisement.
 *
 * @param frame A received frame.
 * @returns True for ICMPv6 type 134 in an IPv6 frame without extension
 * headers.
 */
export function isRouterAdvertisement(frame: Uint8Array): boolean {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  return frame.length >= 55 && v.getUint16(12) === 0x86dd &&
    frame[20] === 58 && frame[54] === 134;
}
