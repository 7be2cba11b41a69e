/**
 * libnl-3 core symbols (sockets, addresses, messages) and the unwrap helpers
 * that turn negative return codes into exceptions.
 *
 * @module
 */
import { mapNetlinkError, NetlinkError, NLE } from "../errors.ts";

/** The libnl error codes (re-exported for the verbs). */
export const NLE_CODES: typeof NLE = NLE;
import { cstr, LazyLibrary, readCString } from "./_lazy.ts";

/** A `struct nl_sock *`. */
export type NlSock = Deno.PointerObject<"nl_sock">;

/** `NETLINK_ROUTE`. */
export const NETLINK_ROUTE = 0;
/** `AF_UNSPEC`. */
export const AF_UNSPEC = 0;
/** `AF_INET`. */
export const AF_INET = 2;
/** `AF_BRIDGE`. */
export const AF_BRIDGE = 7;
/** `AF_INET6`. */
export const AF_INET6 = 10;
/** `AF_LLC`: MAC text parses into a 6-byte address with it. */
export const AF_LLC = 26;
/** `AF_INET` or `AF_INET6` for IP version 4 or 6, `AF_UNSPEC` for none. */
export function addressFamily(version: 4 | 6 | undefined): number {
  return version === undefined ? AF_UNSPEC : version === 4 ? AF_INET : AF_INET6;
}

/** The IP version of `AF_INET` or `AF_INET6`; undefined for another. */
export function ipVersion(af: number): 4 | 6 | undefined {
  return af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined;
}

/** `NLM_F_REPLACE`. */
export const NLM_F_REPLACE = 0x100;
/** `NLM_F_EXCL`. */
export const NLM_F_EXCL = 0x200;
/** `NLM_F_CREATE`. */
export const NLM_F_CREATE = 0x400;

const SOCK = "pointer" as Deno.NativeTypedPointer<NlSock>;

/** The libnl-3 symbol table. */
export const LIBNL_SYMBOLS = {
  /** `struct nl_sock *nl_socket_alloc(void)`. */
  nl_socket_alloc: { parameters: [], result: SOCK },
  /** `void nl_socket_free(struct nl_sock *)` (closes the fd too). */
  nl_socket_free: { parameters: [SOCK], result: "void" },
  /** `int nl_connect(struct nl_sock *, int protocol)`. */
  nl_connect: { parameters: [SOCK, "i32"], result: "i32" },
  /** `const char *nl_geterror(int error)` (static string). */
  nl_geterror: { parameters: ["i32"], result: "pointer" },
  /** `int nl_addr_parse(const char *, int family, struct nl_addr **)`. */
  nl_addr_parse: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  /** `void nl_addr_put(struct nl_addr *)`. */
  nl_addr_put: { parameters: ["pointer"], result: "void" },
  /** `char *nl_addr2str(const struct nl_addr *, char *buf, size_t size)`. */
  nl_addr2str: {
    parameters: ["pointer", "buffer", "usize"],
    result: "pointer",
  },
  /** `unsigned int nl_addr_get_len(const struct nl_addr *)`. */
  nl_addr_get_len: { parameters: ["pointer"], result: "u32" },
  /** `unsigned int nl_addr_get_prefixlen(const struct nl_addr *)`. */
  nl_addr_get_prefixlen: { parameters: ["pointer"], result: "u32" },
  /**
   * `int nl_send_simple(struct nl_sock *, int type, int flags, void *buf,
   * size_t size)` (bytes sent).
   */
  nl_send_simple: {
    parameters: [SOCK, "i32", "i32", "buffer", "usize"],
    result: "i32",
  },
  /** `struct nl_cb *nl_cb_alloc(enum nl_cb_kind)`. */
  nl_cb_alloc: { parameters: ["i32"], result: "pointer" },
  /**
   * `int nl_cb_set(struct nl_cb *, enum nl_cb_type, enum nl_cb_kind,
   * nl_recvmsg_msg_cb_t func, void *arg)`.
   */
  nl_cb_set: {
    parameters: ["pointer", "i32", "i32", "function", "pointer"],
    result: "i32",
  },
  /** `void nl_cb_put(struct nl_cb *)`. */
  nl_cb_put: { parameters: ["pointer"], result: "void" },
  /**
   * `int nl_recvmsgs(struct nl_sock *, struct nl_cb *)`: calls back into JS
   * on this thread, so never bound `nonblocking`.
   */
  nl_recvmsgs: { parameters: [SOCK, "pointer"], result: "i32" },
  /** `int nl_socket_get_fd(const struct nl_sock *)`. */
  nl_socket_get_fd: { parameters: [SOCK], result: "i32" },
  /**
   * `int nl_msg_parse(struct nl_msg *, void (*cb)(struct nl_object *,
   * void *), void *arg)` (the object is borrowed during `cb`).
   */
  nl_msg_parse: {
    parameters: ["pointer", "function", "pointer"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** libnl-3, bound lazily; `VNET_LIBNL_PATH` overrides the path. */
export const libnl: LazyLibrary<typeof LIBNL_SYMBOLS> = new LazyLibrary(
  "libnl-3.so.200",
  LIBNL_SYMBOLS,
  { envVar: "VNET_LIBNL_PATH" },
);

/** Names an operation for error messages: `op` applied to `object`. */
export interface OpName {
  /** The operation, such as `add veth`. */
  op: string;
  /** The object, such as the link name. */
  object: string;
}

/** Builds the (mapped) error for a negative libnl return code. */
export function nlError(rc: number, what: OpName): Error {
  const code = Math.abs(rc);
  const text = readCString(libnl.need("nl_geterror").nl_geterror(code));
  return mapNetlinkError(
    new NetlinkError(what.op, what.object, { nlCode: code, nlMessage: text }),
  );
}

/** Throws the mapped error when `rc` is negative; returns `rc` otherwise. */
export function nlCheck(rc: number, what: OpName): number {
  if (rc < 0) throw nlError(rc, what);
  return rc;
}

/** Returns the pointer, or throws when an allocation returned null. */
export function nonNull<P extends Deno.PointerObject>(ptr: P | null): P {
  if (ptr === null) {
    throw new NetlinkError("allocate", "libnl object", {
      nlCode: NLE.NOMEM,
      nlMessage: "Out of memory",
    });
  }
  return ptr;
}

/**
 * Parses address text (`10.0.0.1/24`, `fd00::1`, `default`, a MAC) into an
 * `nl_addr` owned by `stack`.
 */
export function parseNlAddr(
  stack: DisposableStack,
  text: string,
  options: { family: number; what: OpName },
): Deno.PointerObject {
  const f = libnl.need("nl_addr_parse", "nl_addr_put");
  const out = new BigUint64Array(1);
  nlCheck(f.nl_addr_parse(cstr(text), options.family, out), options.what);
  return stack.adopt(
    nonNull(Deno.UnsafePointer.create(out[0] ?? 0n)),
    f.nl_addr_put,
  );
}

const ADDR_BUF = new Uint8Array(128);

/**
 * Formats a borrowed `nl_addr` without any `/prefix`; `undefined` for a null
 * or empty address.
 */
export function nlAddrText(ptr: Deno.PointerValue): string | undefined {
  if (ptr === null) return undefined;
  const f = libnl.need("nl_addr2str", "nl_addr_get_len");
  if (f.nl_addr_get_len(ptr) === 0) return undefined;
  const res = f.nl_addr2str(ptr, ADDR_BUF, BigInt(ADDR_BUF.length));
  const text = readCString(res);
  const slash = text.indexOf("/");
  return slash < 0 ? text : text.slice(0, slash);
}

/** libnl symbols for address arguments, bound together. */
export const ADDR_SYMBOLS = ["nl_addr_parse", "nl_addr_put"] as const;
