/**
 * {@link NftGeneration}: nf_tables' ruleset generation of one network
 * namespace, read over a `NETLINK_NETFILTER` socket (`NFT_MSG_GETGEN`).
 *
 * Every committed nf_tables transaction in a namespace (an
 * `ebtables-restore`, an `ebtables -A`, an `iptables-nft` change, `nft -f`)
 * raises its generation by one; a failed one, or a listing, leaves it. So a
 * listing taken at generation G still describes the table while the
 * generation reads G (the azure-vnet agent's ebtables view, #14). Reading it
 * costs a few microseconds, against milliseconds for a listing.
 *
 * @module
 */
import { errno, libc, strerror } from "./_ffi/libc.ts";

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NLMSG_ERROR = 2;
const NLM_F_REQUEST = 1;
const NFTA_GEN_ID = 1;
/** Netlink headers are in the host's byte order (little-endian here). */
const HOST_ORDER = true;
/** nf_tables attributes are in network byte order. */
const NETWORK_ORDER = false;
/** `struct nlmsghdr` (16 bytes) and `struct nfgenmsg` (4 bytes). */
const HEADERS = 20;

/** Frees sockets whose reader was never closed (a leak net only). */
const LEAK_NET = new FinalizationRegistry<number>((fd) => {
  libc.need("close").close(fd);
});

/**
 * A `NETLINK_NETFILTER` socket bound to the namespace it was opened in, for
 * {@link NftGeneration.read}. Hold it as long as that namespace's table is
 * watched; `using` closes it.
 *
 * @tags allow-ffi
 * @example Usage
 * ```ts ignore
 * import { NftGeneration } from "@vnet/netlink";
 * using gen = NftGeneration.open();
 * const before = gen.read();
 * // ... list the table ...
 * const unchanged = gen.read() === before;
 * ```
 */
export class NftGeneration implements Disposable {
  #fd: number;
  #seq = 0;

  private constructor(fd: number) {
    this.#fd = fd;
    LEAK_NET.register(this, fd, this);
  }

  /**
   * Opens the socket in the calling thread's network namespace.
   *
   * @returns The reader.
   * @throws {Error} When the socket cannot be made (the errno's text).
   */
  static open(): NftGeneration {
    const fd = libc.need("socket").socket(
      AF_NETLINK,
      SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
      NETLINK_NETFILTER,
    );
    if (fd < 0) {
      throw new Error(
        `Cannot open a netfilter netlink socket: ${strerror(errno())}`,
      );
    }
    return new NftGeneration(fd);
  }

  /**
   * Reads the ruleset generation. The kernel answers while the request is
   * sent, so the read never waits.
   *
   * @returns The generation (a 32-bit counter).
   * @throws {Error} When the socket is closed or the kernel refuses.
   */
  read(): number {
    if (this.#fd < 0) {
      throw new TypeError("Cannot read the nf_tables generation: closed");
    }
    const f = libc.need("write", "read");
    const seq = ++this.#seq;
    const req = new Uint8Array(HEADERS);
    const out = new DataView(req.buffer);
    out.setUint32(0, HEADERS, HOST_ORDER);
    out.setUint16(4, (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN, HOST_ORDER);
    out.setUint16(6, NLM_F_REQUEST, HOST_ORDER);
    out.setUint32(8, seq, HOST_ORDER);
    if (Number(f.write(this.#fd, req, BigInt(HEADERS))) !== HEADERS) {
      throw new Error(
        `Cannot ask for the nf_tables generation: ${strerror(errno())}`,
      );
    }
    const buf = new Uint8Array(512);
    for (;;) {
      const n = Number(f.read(this.#fd, buf, BigInt(buf.length)));
      if (n < 0) {
        throw new Error(
          `Cannot read the nf_tables generation: ${strerror(errno())}`,
        );
      }
      const gen = parseGeneration(buf.subarray(0, n), seq);
      if (gen !== undefined) return gen;
      // An answer to an earlier request that gave up: read on.
    }
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    LEAK_NET.unregister(this);
    libc.need("close").close(this.#fd);
    this.#fd = -1;
  }

  /** Same as {@link NftGeneration.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The generation in a `NFT_MSG_NEWGEN` answer to request `seq`; undefined
 * for an answer to another request.
 *
 * @throws {Error} For an error answer, or one without `NFTA_GEN_ID`.
 */
function parseGeneration(msg: Uint8Array, seq: number): number | undefined {
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  if (msg.length < 16) throw new Error("Short nf_tables generation answer");
  const type = v.getUint16(4, HOST_ORDER);
  if (v.getUint32(8, HOST_ORDER) !== seq) return undefined;
  if (type === NLMSG_ERROR) {
    const code = msg.length >= 20 ? -v.getInt32(16, HOST_ORDER) : 0;
    throw new Error(`The kernel refused NFT_MSG_GETGEN: ${strerror(code)}`);
  }
  if (type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) {
    throw new Error(`Unexpected nf_tables answer type ${type}`);
  }
  const end = Math.min(v.getUint32(0, HOST_ORDER), msg.length);
  for (let off = HEADERS; off + 4 <= end;) {
    const len = v.getUint16(off, HOST_ORDER);
    if (len < 4) break;
    if (
      (v.getUint16(off + 2, HOST_ORDER) & 0x3fff) === NFTA_GEN_ID && len >= 8
    ) {
      return v.getUint32(off + 4, NETWORK_ORDER);
    }
    off += (len + 3) & ~3;
  }
  throw new Error("The nf_tables generation answer has no NFTA_GEN_ID");
}
