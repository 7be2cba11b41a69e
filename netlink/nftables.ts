/**
 * {@link NftSocket}: nf_tables in one network namespace over a
 * `NETLINK_NETFILTER` socket: its ruleset generation (`NFT_MSG_GETGEN`),
 * the handles of a chain's rules (`NFT_MSG_GETRULE`), and the deletion of
 * rules by handle in one transaction that the kernel applies only at a
 * given generation (`NFT_MSG_DELRULE` in a batch with `NFNL_BATCH_GENID`).
 *
 * Every committed nf_tables transaction in a namespace (an
 * `ebtables-restore`, an `ebtables -A`, an `iptables-nft` change, `nft -f`)
 * raises its generation by one; a failed one, or a listing, leaves it. So a
 * listing taken at generation G still describes the table while the
 * generation reads G (the azure-vnet agent's ebtables view, #14). Reading it
 * costs a few microseconds, against milliseconds for a listing.
 *
 * Why delete here rather than with `ebtables-restore -D`: the kernel frees a
 * deleted rule after an RCU grace period, and the process that closes a
 * netfilter socket while such frees are pending waits for them (the
 * `NETLINK_URELEASE` flush). An `ebtables-restore -D` therefore takes 13 to
 * 22 ms here, against 3 to 4 ms for an `-A`; a socket that stays open
 * deletes in about 0.2 ms and leaves the frees to the kernel's worker.
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
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_GETRULE = 7;
const NFT_MSG_DELRULE = 8;
const NFT_MSG_GETGEN = 16;
const NFT_MSG_NEWGEN = 15;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFNL_BATCH_GENID = 1;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 1;
const NLM_F_ACK = 4;
const NLM_F_DUMP = 0x300;
const NFTA_GEN_ID = 1;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_RULE_HANDLE = 3;
const NFTA_RULE_USERDATA = 7;
const NLM_F_DUMP_INTR = 0x10;
/** The most rules {@link NftSocket.deleteRules} takes in one transaction. */
export const NFT_MAX_DELETE = 256;
const EAGAIN = 11;
const ERESTART = 85;
/** `NFPROTO_*` of the families a caller may name. */
const FAMILIES = { bridge: 7 } as const;
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

/** A rule of a chain as a dump shows it. */
export interface NftRuleInfo {
  /** The rule's handle (`NFTA_RULE_HANDLE`). */
  readonly handle: bigint;
  /**
   * Whether it carries user data (`NFTA_RULE_USERDATA`, such as an `nft`
   * comment), which `ebtables -L` does not show.
   */
  readonly userdata: boolean;
}

/** A rule of a chain, by its handle. */
export interface NftRuleRef {
  /** The chain. */
  readonly chain: string;
  /** The rule's handle (`NFTA_RULE_HANDLE`). */
  readonly handle: bigint;
}

/** A table of an nf_tables family. */
export interface NftTableRef {
  /** The family (ebtables-nft's tables are `bridge`). */
  readonly family: keyof typeof FAMILIES;
  /** The table, such as `nat`. */
  readonly table: string;
}

/**
 * The kernel refused a transaction because the ruleset generation was not
 * the one it was made for: something else committed since.
 */
export class NftGenerationMoved extends Error {
  override name = "NftGenerationMoved";
}

/**
 * A `NETLINK_NETFILTER` socket bound to the namespace it was opened in.
 * Hold it as long as that namespace's tables are worked on; `using` closes
 * it. Every call answers at once (the kernel answers while the request is
 * sent), so none waits.
 *
 * @tags allow-ffi
 * @example Usage
 * ```ts ignore
 * import { NftSocket } from "@vnet/netlink";
 * using nft = NftSocket.open();
 * const gen = nft.generation();
 * const nat = { family: "bridge", table: "nat" } as const;
 * const [first] = nft.rules({ ...nat, chain: "PREROUTING" });
 * if (first !== undefined) {
 *   nft.deleteRules({ ...nat, generation: gen }, [
 *     { chain: "PREROUTING", handle: first.handle },
 *   ]);
 * }
 * ```
 */
export class NftSocket implements Disposable {
  #fd: number;
  #seq = 0;

  private constructor(fd: number) {
    this.#fd = fd;
    LEAK_NET.register(this, fd, this);
  }

  /**
   * Opens the socket in the calling thread's network namespace.
   *
   * @returns The socket.
   * @throws {Error} When the socket cannot be made (the errno's text).
   */
  static open(): NftSocket {
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
    return new NftSocket(fd);
  }

  /**
   * Reads the ruleset generation.
   *
   * @returns The generation (a 32-bit counter).
   * @throws {Error} When the socket is closed or the kernel refuses.
   */
  generation(): number {
    const seq = this.#send([
      message(this.#next(), {
        type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
        flags: NLM_F_REQUEST,
      }),
    ]);
    let gen: number | undefined;
    this.#answers("read the nf_tables generation", (m) => {
      if (m.seq !== seq) return false;
      refused(m, "NFT_MSG_GETGEN");
      if (m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)) {
        throw new Error(`Unexpected nf_tables answer type ${m.type}`);
      }
      const id = attribute(m, NFTA_GEN_ID);
      if (id === undefined || id.byteLength < 4) {
        throw new Error("The nf_tables generation answer has no NFTA_GEN_ID");
      }
      gen = id.getUint32(0, NETWORK_ORDER);
      return true;
    });
    if (gen === undefined) throw new Error("No nf_tables generation");
    return gen;
  }

  /**
   * A chain's rules, in the chain's order (the order `ebtables -L` lists
   * them in).
   *
   * @param spec The family, table and chain.
   * @returns The rules; empty for an empty chain, or one that does not
   * exist.
   * @throws {Error} When the socket is closed, the kernel refuses, the dump
   * was interrupted by a change, or the kernel does not answer at once.
   */
  rules(spec: NftTableRef & { chain: string }): NftRuleInfo[] {
    const seq = this.#send([
      ruleMessage(this.#next(), {
        type: NFT_MSG_GETRULE,
        flags: NLM_F_REQUEST | NLM_F_DUMP,
        rule: spec,
      }),
    ]);
    const rules: NftRuleInfo[] = [];
    this.#answers(`list the rules of chain "${spec.chain}"`, (m) => {
      if (m.seq !== seq) return false;
      refused(m, `NFT_MSG_GETRULE of chain "${spec.chain}"`);
      if ((m.flags & NLM_F_DUMP_INTR) !== 0) {
        throw new Error(
          `The rules of chain "${spec.chain}" changed while they were listed`,
        );
      }
      if (m.type === NLMSG_DONE) {
        const code = m.view.byteLength >= 20
          ? -m.view.getInt32(16, HOST_ORDER)
          : 0;
        if (code > 0) {
          throw new Error(
            `Cannot list the rules of chain "${spec.chain}": ${strerror(code)}`,
          );
        }
        return true;
      }
      if (m.type !== ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWRULE)) {
        throw new Error(`Unexpected nf_tables answer type ${m.type}`);
      }
      const handle = attribute(m, NFTA_RULE_HANDLE);
      if (handle === undefined || handle.byteLength < 8) {
        throw new Error("An nf_tables rule came without its handle");
      }
      rules.push({
        handle: handle.getBigUint64(0, NETWORK_ORDER),
        userdata: attribute(m, NFTA_RULE_USERDATA) !== undefined,
      });
      return false;
    });
    return rules;
  }

  /**
   * Deletes rules by handle in one transaction that the kernel applies only
   * while the ruleset is at `generation`: all of them, or, on any refusal,
   * none.
   *
   * @param spec The family and table, and the generation the handles were
   * read at.
   * @param rules The rules, at most {@link NFT_MAX_DELETE}.
   * @throws {NftGenerationMoved} When the ruleset is no longer at
   * `generation` (nothing was deleted).
   * @throws {RangeError} For more than {@link NFT_MAX_DELETE} rules.
   * @throws {Error} When the socket is closed, or the kernel refuses
   * (nothing was deleted).
   */
  deleteRules(
    spec: NftTableRef & { generation: number },
    rules: readonly NftRuleRef[],
  ): void {
    if (rules.length === 0) return;
    if (rules.length > NFT_MAX_DELETE) {
      throw new RangeError(
        `Cannot delete ${rules.length} rules in one nf_tables transaction (at most ${NFT_MAX_DELETE})`,
      );
    }
    if (spec.generation === 0) {
      // The kernel reads a generation of 0 as "do not check".
      throw new NftGenerationMoved("Cannot delete at nf_tables generation 0");
    }
    const genid = new Uint8Array(4);
    new DataView(genid.buffer).setUint32(0, spec.generation, NETWORK_ORDER);
    const batch = { type: NFNL_MSG_BATCH_BEGIN, flags: NLM_F_REQUEST };
    const subsys = { resId: NFNL_SUBSYS_NFTABLES };
    const msgs = [
      message(this.#next(), {
        ...batch,
        ...subsys,
        attrs: [attr(NFNL_BATCH_GENID, genid)],
      }),
    ];
    // Every message of the batch: an answer to any other is an old one.
    // Only the last deletion asks for an acknowledgement (one per rule
    // could overflow the socket's buffer): the kernel reports an error
    // whether asked or not, and before that acknowledgement.
    const ours = new Set<number>();
    let last = 0;
    for (const [i, r] of rules.entries()) {
      const handle = new Uint8Array(8);
      new DataView(handle.buffer).setBigUint64(0, r.handle, NETWORK_ORDER);
      const seq = this.#next();
      last = seq;
      ours.add(seq);
      msgs.push(ruleMessage(seq, {
        type: NFT_MSG_DELRULE,
        flags: NLM_F_REQUEST | (i === rules.length - 1 ? NLM_F_ACK : 0),
        rule: { ...spec, chain: r.chain },
        more: [attr(NFTA_RULE_HANDLE, handle)],
      }));
    }
    const end = this.#next();
    msgs.push(message(end, {
      type: NFNL_MSG_BATCH_END,
      flags: NLM_F_REQUEST,
      ...subsys,
    }));
    ours.add(this.#send(msgs)).add(end);
    // The batch ran while it was sent: the last deletion's acknowledgement,
    // or the error of the message that failed it, is queued already.
    this.#answers("delete nf_tables rules", (m) => {
      if (!ours.has(m.seq) || m.type !== NLMSG_ERROR) return false;
      const code = m.error ?? 0;
      if (code === ERESTART) {
        throw new NftGenerationMoved(
          `The nf_tables ruleset is no longer at generation ${spec.generation}`,
        );
      }
      if (code !== 0) {
        throw new Error(
          `The kernel refused to delete rules: ${strerror(code)}`,
        );
      }
      return m.seq === last;
    });
  }

  /** Closes the socket (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    LEAK_NET.unregister(this);
    libc.need("close").close(this.#fd);
    this.#fd = -1;
  }

  /** Same as {@link NftSocket.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #next(): number {
    this.#seq = (this.#seq + 1) >>> 0 || 1;
    return this.#seq;
  }

  /** Writes the messages in one datagram; the first one's sequence number. */
  #send(msgs: readonly Uint8Array[]): number {
    if (this.#fd < 0) throw new TypeError("Cannot use nf_tables: closed");
    const size = msgs.reduce((n, m) => n + m.length, 0);
    const out = new Uint8Array(size);
    let at = 0;
    for (const m of msgs) {
      out.set(m, at);
      at += m.length;
    }
    const n = Number(libc.need("write").write(this.#fd, out, BigInt(size)));
    if (n !== size) {
      throw new Error(`Cannot send to nf_tables: ${strerror(errno())}`);
    }
    return msgs[0] === undefined ? 0 : seqOf(msgs[0]);
  }

  /**
   * Reads answers, each passed to `take`, until it returns true. Answers
   * to earlier requests that gave up are passed too (their sequence number
   * tells them apart). An answer that is not there yet is an error: the
   * kernel answers while the request is sent.
   */
  #answers(what: string, take: (m: Answer) => boolean): void {
    const buf = new Uint8Array(65536);
    const read = libc.need("read").read;
    for (;;) {
      const n = Number(read(this.#fd, buf, BigInt(buf.length)));
      if (n < 0) {
        const code = errno();
        throw new Error(
          code === EAGAIN
            ? `Cannot ${what}: no answer from nf_tables`
            : `Cannot ${what}: ${strerror(code)}`,
        );
      }
      for (const m of answers(buf.subarray(0, n))) if (take(m)) return;
    }
  }
}

/** Throws for an error answer (an acknowledgement passes). */
function refused(m: Answer, request: string): void {
  if (m.type === NLMSG_ERROR && m.error !== 0) {
    throw new Error(
      `The kernel refused ${request}: ${strerror(m.error ?? 0)}`,
    );
  }
}

/** One netlink message of an answer. */
interface Answer {
  readonly type: number;
  readonly flags: number;
  readonly seq: number;
  /** For `NLMSG_ERROR`: the errno (0: an acknowledgement). */
  readonly error: number | undefined;
  /** The message, from its header on. */
  readonly view: DataView;
}

/** The messages in one read. */
function* answers(buf: Uint8Array): Generator<Answer> {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let off = 0; off + 16 <= buf.length;) {
    const len = v.getUint32(off, HOST_ORDER);
    if (len < 16 || off + len > buf.length) return;
    const type = v.getUint16(off + 4, HOST_ORDER);
    const flags = v.getUint16(off + 6, HOST_ORDER);
    const seq = v.getUint32(off + 8, HOST_ORDER);
    const error = type === NLMSG_ERROR && len >= 20
      ? -v.getInt32(off + 16, HOST_ORDER)
      : undefined;
    yield {
      type,
      flags,
      seq,
      error,
      view: new DataView(buf.buffer, buf.byteOffset + off, len),
    };
    off += (len + 3) & ~3;
  }
}

/** The payload of the first top-level attribute `type` of an nf_tables message. */
function attribute(m: Answer, type: number): DataView | undefined {
  const v = m.view;
  for (let off = HEADERS; off + 4 <= v.byteLength;) {
    const len = v.getUint16(off, HOST_ORDER);
    if (len < 4 || off + len > v.byteLength) return undefined;
    if ((v.getUint16(off + 2, HOST_ORDER) & 0x3fff) === type) {
      return new DataView(v.buffer, v.byteOffset + off + 4, len - 4);
    }
    off += (len + 3) & ~3;
  }
  return undefined;
}

/** A netlink attribute, padded to 4 bytes. */
function attr(type: number, payload: Uint8Array): Uint8Array {
  const len = 4 + payload.length;
  const out = new Uint8Array((len + 3) & ~3);
  const v = new DataView(out.buffer);
  v.setUint16(0, len, HOST_ORDER);
  v.setUint16(2, type, HOST_ORDER);
  out.set(payload, 4);
  return out;
}

/** A NUL-terminated string attribute. */
function stringAttr(type: number, text: string): Uint8Array {
  return attr(type, new TextEncoder().encode(`${text}\0`));
}

/** An nf_tables message: `nlmsghdr`, `nfgenmsg`, attributes. */
function message(
  seq: number,
  m: {
    type: number;
    flags: number;
    family?: number;
    resId?: number;
    attrs?: readonly Uint8Array[];
  },
): Uint8Array {
  const attrs = m.attrs ?? [];
  const out = new Uint8Array(
    HEADERS + attrs.reduce((n, a) => n + a.length, 0),
  );
  const v = new DataView(out.buffer);
  v.setUint32(0, out.length, HOST_ORDER);
  v.setUint16(4, m.type, HOST_ORDER);
  v.setUint16(6, m.flags, HOST_ORDER);
  v.setUint32(8, seq, HOST_ORDER);
  v.setUint8(16, m.family ?? 0);
  v.setUint16(18, m.resId ?? 0, NETWORK_ORDER);
  let at = HEADERS;
  for (const a of attrs) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** An nf_tables rule message: its family, table and chain, then `more`. */
function ruleMessage(
  seq: number,
  m: {
    type: number;
    flags: number;
    rule: NftTableRef & { chain: string };
    more?: readonly Uint8Array[];
  },
): Uint8Array {
  return message(seq, {
    type: (NFNL_SUBSYS_NFTABLES << 8) | m.type,
    flags: m.flags,
    family: FAMILIES[m.rule.family],
    attrs: [
      stringAttr(NFTA_RULE_TABLE, m.rule.table),
      stringAttr(NFTA_RULE_CHAIN, m.rule.chain),
      ...m.more ?? [],
    ],
  });
}

function seqOf(msg: Uint8Array): number {
  return new DataView(msg.buffer, msg.byteOffset).getUint32(8, HOST_ORDER);
}
