/**
 * The one dump loop of the list verbs: an `RTM_GET*` request with
 * `NLM_F_DUMP`, each answer parsed into a libnl object by libnl's own parser
 * (`nl_msg_parse`) and handed to the verb while it is borrowed.
 *
 * No libnl cache is involved. A cache keys its objects and drops a second
 * one with the same key: the route cache keys on (family, tos, table, dst,
 * priority), so routes that differ only in their link were lost. A cache
 * refill also restarts an interrupted dump without bound; here the restart
 * is bounded ({@link DUMP_ATTEMPTS}).
 *
 * @module
 */
import { NetlinkError, NLE } from "../errors.ts";
import { readCString } from "./_lazy.ts";
import { errno, libc, strerror } from "./libc.ts";
import { libnl, nlCheck, nlError, type NlSock, nonNull } from "./libnl.ts";
import { libnlRoute } from "./libnl_route.ts";
import type { OpName } from "./libnl.ts";

/** `RTM_GETLINK`. */
export const RTM_GETLINK = 18;
/** `RTM_GETADDR`. */
export const RTM_GETADDR = 22;
/** `RTM_GETROUTE`. */
export const RTM_GETROUTE = 26;
/** `RTM_GETNEIGH`. */
export const RTM_GETNEIGH = 30;
/** `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`). */
export const NLM_F_DUMP = 0x300;

/**
 * Each request type's family header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`,
 * `ndmsg`: its size) and where the kernel takes a link to filter on: a
 * header field at `offset` or an attribute of type `attr`.
 */
const KINDS: Record<
  number,
  { size: number; link?: { offset: number } | { attr: number } }
> = {
  [RTM_GETLINK]: { size: 16 },
  [RTM_GETADDR]: { size: 8, link: { offset: 4 } }, // ifa_index
  [RTM_GETROUTE]: { size: 12, link: { attr: 4 } }, // RTA_OIF
  [RTM_GETNEIGH]: { size: 12, link: { attr: 8 } }, // NDA_IFINDEX
};

/** `SOL_NETLINK`. */
const SOL_NETLINK = 270;
/** `NETLINK_GET_STRICT_CHK`. */
const NETLINK_GET_STRICT_CHK = 12;
/** Netlink headers and attributes are in the host's byte order. */
const HOST_ORDER = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const NL_CB_DEFAULT = 0;
const NL_CB_CUSTOM = 3;
const NL_CB_VALID = 0;
const NL_OK = 0;

/** How many times a dump is sent when a change keeps interrupting it. */
export const DUMP_ATTEMPTS = 5;

/** libnl symbols of a dump and of its readers (address text), bound together. */
export const DUMP_SYMBOLS = [
  "nl_send_simple",
  "nl_cb_alloc",
  "nl_cb_set",
  "nl_cb_put",
  "nl_recvmsgs",
  "nl_msg_parse",
  "nl_socket_get_fd",
  "nl_geterror",
  "nl_addr2str",
  "nl_addr_get_len",
] as const;

/** `int (*nl_recvmsg_msg_cb_t)(struct nl_msg *, void *)`. */
const ON_MESSAGE = {
  parameters: ["pointer", "pointer"],
  result: "i32",
} as const satisfies Deno.UnsafeCallbackDefinition;

/** `void (*cb)(struct nl_object *, void *)` of `nl_msg_parse`. */
const ON_OBJECT = {
  parameters: ["pointer", "pointer"],
  result: "void",
} as const satisfies Deno.UnsafeCallbackDefinition;

/**
 * Turns the kernel's strict checking of requests on a socket on or off;
 * false when the kernel has no such option (before 4.20) or refuses.
 */
function setStrictCheck(sock: NlSock, options: { on: boolean }): boolean {
  const fd = libnl.need("nl_socket_get_fd").nl_socket_get_fd(sock);
  const value = new Int32Array([options.on ? 1 : 0]);
  const c = libc.need("setsockopt");
  return c.setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, value, 4) === 0;
}

/**
 * The payload of a dump request: the family header with its family and,
 * for a kernel-side filter, the link where the kind takes it.
 */
function requestPayload(
  request: { type: number; family: number },
  link: number | undefined,
): Uint8Array<ArrayBuffer> {
  const kind = KINDS[request.type];
  if (kind === undefined) {
    throw new RangeError(`Cannot dump message type ${request.type}`);
  }
  const where = link === undefined ? undefined : kind.link;
  const attr = where !== undefined && "attr" in where ? where.attr : undefined;
  const payload = new Uint8Array(kind.size + (attr === undefined ? 0 : 8));
  const view = new DataView(payload.buffer);
  payload[0] = request.family;
  if (where !== undefined && "offset" in where) {
    view.setUint32(where.offset, link ?? 0, HOST_ORDER);
  }
  if (attr !== undefined) {
    // struct rtattr { u16 len; u16 type; } and the u32 value.
    view.setUint16(kind.size, 8, HOST_ORDER);
    view.setUint16(kind.size + 2, attr, HOST_ORDER);
    view.setUint32(kind.size + 4, link ?? 0, HOST_ORDER);
  }
  return payload;
}

/**
 * Runs `attempt` until it returns anything but `-NLE_DUMP_INTR`, at most
 * {@link DUMP_ATTEMPTS} times, and throws the mapped error of a negative
 * result.
 *
 * @param attempt One complete dump; returns a libnl code.
 * @param what The operation, for the error.
 * @throws {NetlinkError} With `nlCode` `NLE.DUMP_INTR` when every attempt
 *   was interrupted, or the mapped error of another negative code.
 */
export function retryDump(attempt: () => number, what: OpName): void {
  for (let n = 1;; n++) {
    const rc = attempt();
    if (rc !== -NLE.DUMP_INTR) {
      nlCheck(rc, what);
      return;
    }
    if (n >= DUMP_ATTEMPTS) {
      const text = readCString(libnl.need("nl_geterror").nl_geterror(rc));
      throw new NetlinkError(what.op, what.object, {
        nlCode: NLE.DUMP_INTR,
        nlMessage: `${text} (${n} attempts)`,
      });
    }
  }
}

/** What {@link dumpObjects} dumps and how it reads each object. */
export interface DumpRequest<T> {
  /** `RTM_GETLINK`, `RTM_GETADDR`, `RTM_GETROUTE` or `RTM_GETNEIGH`. */
  type: number;
  /** `AF_*` of the objects, `AF_UNSPEC` for all. */
  family: number;
  /** The operation, for errors. */
  what: OpName;
  /**
   * An ifindex: ask the kernel for the objects of this link only (a route's
   * `RTA_OIF`, an address's `ifa_index`, a neighbour's `NDA_IFINDEX`), with
   * strict checking on (`NETLINK_GET_STRICT_CHK`, Linux 4.20) for this dump
   * only. A kernel without the option dumps everything, so `read` still
   * filters.
   */
  link?: number;
  /** Reads one borrowed object into `out`, the entries of this attempt. */
  read: (obj: Deno.PointerObject, out: T[]) => void;
}

/**
 * Dumps every object of a kind (`ip link|addr|route|neigh show`) and reads
 * each with `read` while libnl holds it (the pointer is borrowed: libnl puts
 * it when `read` returns).
 *
 * Everything runs synchronously on the JS thread: libnl calls back into JS
 * from inside `nl_recvmsgs`, so this must never be bound `nonblocking`. A
 * failure inside `read` or libnl's parser stops the reading but not the
 * receiving: the rest of the dump is drained off the socket, so the next
 * request on it gets its own answer, and then the failure is thrown. An
 * interrupted dump (`NLM_F_DUMP_INTR`: the objects changed meanwhile) is
 * read to its end, its entries dropped, and sent again.
 *
 * @param sock The socket.
 * @param request What to dump and how to read it.
 * @returns The entries of the complete attempt.
 * @throws {NetlinkError} When the dump fails or stays interrupted.
 */
export function dumpObjects<T>(sock: NlSock, request: DumpRequest<T>): T[] {
  const { read } = request;
  const f = libnl.need(...DUMP_SYMBOLS);
  // nl_msg_parse finds the parsers libnl-route-3 registers when it is
  // loaded; every list verb binds this symbol anyway.
  libnlRoute.need("rtnl_link_put");
  let out: T[] = [];
  let failure: { error: unknown } | undefined;
  using stack = new DisposableStack();
  const onObject = stack.adopt(
    new Deno.UnsafeCallback(ON_OBJECT, (obj) => {
      if (failure !== undefined || obj === null) return;
      try {
        read(obj, out);
      } catch (error) {
        failure = { error };
      }
    }),
    (cb) => cb.close(),
  );
  const onMessage = stack.adopt(
    new Deno.UnsafeCallback(ON_MESSAGE, (msg) => {
      if (failure !== undefined || msg === null) return NL_OK;
      const rc = f.nl_msg_parse(msg, onObject.pointer, null);
      if (rc < 0 && failure === undefined) {
        failure = { error: nlError(rc, request.what) };
      }
      return NL_OK;
    }),
    (cb) => cb.close(),
  );
  const cb = stack.adopt(nonNull(f.nl_cb_alloc(NL_CB_DEFAULT)), f.nl_cb_put);
  const strict = request.link !== undefined &&
    setStrictCheck(sock, { on: true });
  if (strict) {
    stack.defer(() => {
      if (setStrictCheck(sock, { on: false })) return;
      const code = errno();
      throw new NetlinkError("turn off strict checking on", "netlink socket", {
        nlCode: 0,
        nlMessage: strerror(code),
        errno: code,
      });
    });
  }
  const payload = requestPayload(request, strict ? request.link : undefined);
  nlCheck(
    f.nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, onMessage.pointer, null),
    request.what,
  );
  retryDump(() => {
    out = [];
    failure = undefined;
    const sent = f.nl_send_simple(
      sock,
      request.type,
      NLM_F_DUMP,
      payload,
      BigInt(payload.length),
    );
    return sent < 0 ? sent : f.nl_recvmsgs(sock, cb);
  }, request.what);
  if (failure !== undefined) throw failure.error;
  return out;
}
