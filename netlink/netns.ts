/**
 * Network namespaces: file descriptors, the scoped switch
 * {@link withNetns}, and named namespaces like `ip netns add/del`.
 *
 * Why only synchronous code may run while switched: `setns()` moves only the
 * calling thread, here the JS main thread. Async ops and `nonblocking` FFI
 * run on tokio's blocking pool, whose threads stay in the original namespace,
 * and any thread created while switched (a pool thread, a Worker, a spawned
 * child) is born in the target namespace and stays there for good, so later
 * async ops would land in a mix of namespaces. Sync FFI and `*Sync` file APIs
 * run on the JS thread itself and see the target. Between the two `setns`
 * calls we therefore run only sync FFI and `*Sync` calls, with no `await`,
 * no Worker and no spawn (see `docs/STYLE.md` section 6).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  CLONE_NEWNET,
  errno,
  libc,
  MNT_DETACH,
  MS_BIND,
  MS_REC,
  MS_SHARED,
  NS_GET_NSTYPE,
  O_NONBLOCK,
  O_RDONLY_CLOEXEC,
  STAT_SIZE,
  strerror,
} from "./_ffi/libc.ts";
import { cstr } from "./_ffi/_lazy.ts";
import { mapNetlinkError, NetlinkError } from "./errors.ts";

/** Where named namespaces are bind-mounted, as iproute2 does. */
export const NETNS_RUN_DIR = "/var/run/netns";

const SELF_NS = "/proc/thread-self/ns/net";

function libcError(op: string, object: string, code: number): Error {
  return mapNetlinkError(
    new NetlinkError(op, object, {
      nlCode: 0,
      nlMessage: strerror(code),
      errno: code,
    }),
  );
}

/** An open namespace file descriptor (`O_RDONLY|O_CLOEXEC`). */
export class NetnsFd implements Disposable {
  #fd: number;
  /** The path it was opened from. */
  readonly path: string;

  private constructor(fd: number, path: string) {
    this.#fd = fd;
    this.path = path;
  }

  /**
   * Opens a network namespace file with libc `open` (no `--allow-read`
   * needed), without blocking (`O_NONBLOCK`: a FIFO at `path` must not hang
   * the caller), and checks that it is a network namespace
   * (`NS_GET_NSTYPE`).
   *
   * @param path A netns path.
   * @returns The open descriptor.
   * @throws {Deno.errors.NotFound} When `path` does not exist.
   * @throws {TypeError} When `path` is no network namespace.
   */
  static open(path: string): NetnsFd {
    const f = libc.need("open", "close", "ioctl", "__errno_location");
    const fd = f.open(cstr(path), O_RDONLY_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw libcError("open netns", path, errno());
    const type = f.ioctl(fd, BigInt(NS_GET_NSTYPE));
    if (type !== CLONE_NEWNET) {
      f.close(fd);
      throw new TypeError(
        `Cannot open netns "${path}": not a network namespace`,
      );
    }
    return new NetnsFd(fd, path);
  }

  /**
   * The namespace's identity: the device and inode of its nsfs file. Two
   * paths name the same namespace exactly when their identities are equal
   * (`ip netns identify` compares the same pair).
   *
   * @returns `${dev}:${ino}`.
   */
  identity(): string {
    const buf = new Uint8Array(STAT_SIZE);
    if (libc.need("fstat").fstat(this.fd, buf) !== 0) {
      throw libcError("stat netns", this.path, errno());
    }
    const [dev, ino] = new BigUint64Array(buf.buffer, 0, 2);
    return `${dev}:${ino}`;
  }

  /** The raw descriptor; throws after close. */
  get fd(): number {
    if (this.#fd < 0) throw new TypeError(`Cannot use closed netns fd`);
    return this.#fd;
  }

  /** Closes the descriptor (idempotent). */
  close(): void {
    if (this.#fd < 0) return;
    libc.need("close").close(this.#fd);
    this.#fd = -1;
  }

  /** Same as {@link NetnsFd.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function setnsOrThrow(fd: NetnsFd): void {
  if (libc.need("setns").setns(fd.fd, CLONE_NEWNET) !== 0) {
    throw libcError("enter netns", fd.path, errno());
  }
}

function restoreOrAbort(self: NetnsFd): void {
  if (libc.need("setns").setns(self.fd, CLONE_NEWNET) === 0) return;
  const code = errno();
  getLogger(["vnet", "netlink"]).fatal(
    "Cannot return to the original netns: {error}; aborting",
    { error: strerror(code) },
  );
  // The JS thread would stay in the wrong namespace: nothing is safe now.
  libc.need("abort").abort();
}

/**
 * Runs a synchronous callback with the JS thread inside another network
 * namespace, and always switches back.
 *
 * Only sync code may run in `fn` (see the module doc): sync FFI and `*Sync`
 * APIs. A callback that returns a Promise is refused with a `TypeError`
 * (after switching back). If switching back fails, the process aborts.
 * Requires CAP_SYS_ADMIN.
 *
 * @tags allow-ffi
 * @param nsPath The target netns path.
 * @param fn The callback.
 * @returns What `fn` returned.
 * @throws {Deno.errors.NotFound} When `nsPath` does not exist.
 * @throws {TypeError} When `fn` returned a Promise.
 *
 * @example Usage
 * ```ts ignore
 * import { withNetns } from "@vnet/netlink";
 *
 * const dev = withNetns("/var/run/netns/c1", () =>
 *   Deno.readTextFileSync("/proc/thread-self/net/dev"));
 * ```
 */
export function withNetns<T>(
  nsPath: string,
  fn: () => T extends PromiseLike<unknown> ? never : T,
): T {
  libc.need("open", "close", "__errno_location", "setns");
  using self = NetnsFd.open(SELF_NS);
  {
    using target = NetnsFd.open(nsPath);
    setnsOrThrow(target);
  }
  let result: T;
  try {
    result = fn();
  } finally {
    restoreOrAbort(self);
  }
  if (result instanceof Promise) {
    throw new TypeError(
      `Cannot run an async callback in netns "${nsPath}": sync only`,
    );
  }
  return result;
}

/**
 * Tells whether `nsPath` is the network namespace the calling thread runs
 * in, by device and inode (so `/proc/self/ns/net`, `/proc/1/ns/net` from the
 * host, or an `ip netns attach` of the host's namespace all count).
 *
 * @tags allow-ffi
 * @param nsPath A netns path.
 * @returns True when it is the current namespace.
 * @throws {Deno.errors.NotFound} When `nsPath` does not exist.
 * @throws {TypeError} When `nsPath` is no network namespace.
 *
 * @example Usage
 * ```ts ignore
 * import { isCurrentNetns } from "@vnet/netlink";
 *
 * isCurrentNetns("/proc/self/ns/net"); // true
 * ```
 */
export function isCurrentNetns(nsPath: string): boolean {
  using self = NetnsFd.open(SELF_NS);
  using other = NetnsFd.open(nsPath);
  return self.identity() === other.identity();
}

function validateNetnsName(name: string): void {
  if (typeof name !== "string") {
    throw new TypeError("Cannot use netns name: not a string");
  }
  if (
    name === "" || name === "." || name === ".." || name.includes("/") ||
    new TextEncoder().encode(name).length > 255
  ) {
    throw new RangeError(`Cannot use netns name "${name}": invalid`);
  }
}

function mount(
  source: string,
  target: string,
  flags: number,
): number {
  const rc = libc.need("mount").mount(
    cstr(source),
    cstr(target),
    cstr("none"),
    BigInt(flags),
    null,
  );
  return rc === 0 ? 0 : errno();
}

/** Makes `NETNS_RUN_DIR` a shared mount point, as iproute2 does. */
function makeRunDirShared(): void {
  Deno.mkdirSync(NETNS_RUN_DIR, { recursive: true, mode: 0o755 });
  const EINVAL = 22;
  let code = mount("", NETNS_RUN_DIR, MS_SHARED | MS_REC);
  if (code === EINVAL) {
    // Not a mount point yet: bind it onto itself, then try again.
    code = mount(NETNS_RUN_DIR, NETNS_RUN_DIR, MS_BIND | MS_REC);
    if (code !== 0) {
      throw libcError("bind-mount netns dir", NETNS_RUN_DIR, code);
    }
    code = mount("", NETNS_RUN_DIR, MS_SHARED | MS_REC);
  }
  if (code !== 0) throw libcError("share netns dir", NETNS_RUN_DIR, code);
}

/**
 * Creates a named network namespace, like `ip netns add NAME`: a new netns
 * bind-mounted onto `/var/run/netns/NAME`.
 *
 * The JS thread unshares into the new namespace only for the bind mount and
 * switches back at once (sync code only in between). Requires CAP_SYS_ADMIN.
 *
 * @tags allow-ffi, allow-read, allow-write
 * @param name The namespace name.
 * @returns The namespace path.
 * @throws {Deno.errors.AlreadyExists} When the name is taken.
 * @throws {RangeError} When the name is invalid.
 *
 * @example Usage
 * ```ts ignore
 * import { netnsAdd, netnsDel } from "@vnet/netlink";
 *
 * const path = netnsAdd("c1"); // "/var/run/netns/c1"
 * netnsDel("c1");
 * ```
 */
export function netnsAdd(name: string): string {
  validateNetnsName(name);
  makeRunDirShared();
  const path = `${NETNS_RUN_DIR}/${name}`;
  try {
    Deno.openSync(path, { createNew: true, write: true, mode: 0o444 }).close();
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new Deno.errors.AlreadyExists(
        `Cannot add netns "${name}": already exists`,
        { cause: e },
      );
    }
    throw e;
  }
  try {
    using self = NetnsFd.open(SELF_NS);
    const f = libc.need("unshare");
    if (f.unshare(CLONE_NEWNET) !== 0) {
      throw libcError("create netns", name, errno());
    }
    let code: number;
    try {
      code = mount(SELF_NS, path, MS_BIND);
    } finally {
      restoreOrAbort(self);
    }
    if (code !== 0) throw libcError("bind-mount netns", path, code);
  } catch (e) {
    Deno.removeSync(path);
    throw e;
  }
  return path;
}

/**
 * Deletes a named network namespace, like `ip netns del NAME`: detaches the
 * bind mount and removes the file. The namespace itself lives on while a
 * process or socket still holds it.
 *
 * @tags allow-ffi, allow-write
 * @param name The namespace name.
 * @throws {Deno.errors.NotFound} When no such namespace exists.
 *
 * @example Usage
 * ```ts ignore
 * import { netnsDel } from "@vnet/netlink";
 *
 * netnsDel("c1");
 * ```
 */
export function netnsDel(name: string): void {
  validateNetnsName(name);
  const path = `${NETNS_RUN_DIR}/${name}`;
  const rc = libc.need("umount2").umount2(cstr(path), MNT_DETACH);
  const code = rc === 0 ? 0 : errno();
  const EINVAL = 22;
  if (code !== 0 && code !== EINVAL) {
    throw libcError("unmount netns", path, code);
  }
  try {
    Deno.removeSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(
        `Cannot delete netns "${name}": not found`,
        {
          cause: e,
        },
      );
    }
    throw e;
  }
}
