/**
 * libc symbols: namespace file descriptors, `setns`/`unshare`, mounts for
 * named namespaces, and errno.
 *
 * @module
 */
import { LazyLibrary } from "./_lazy.ts";

/** `CLONE_NEWNET` from `<sched.h>`. */
export const CLONE_NEWNET = 0x40000000;
/** `O_RDONLY | O_CLOEXEC`. */
export const O_RDONLY_CLOEXEC = 0o2000000;
/**
 * `O_NONBLOCK`: an open of a FIFO returns at once instead of waiting for a
 * writer (a netns path that is a FIFO must not hang the caller).
 */
export const O_NONBLOCK = 0o4000;
/** `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`. */
export const NS_GET_NSTYPE = 0xb703;
/** `sizeof(struct stat)` on x86_64 (`st_dev` at 0, `st_ino` at 8). */
export const STAT_SIZE = 144;
/** `O_WRONLY | O_CLOEXEC`. */
export const O_WRONLY_CLOEXEC = 0o2000001;
/** `MS_BIND` from `<sys/mount.h>`. */
export const MS_BIND = 4096;
/** `MS_REC`. */
export const MS_REC = 16384;
/** `MS_SHARED`. */
export const MS_SHARED = 1 << 20;
/** `MNT_DETACH` for `umount2`. */
export const MNT_DETACH = 2;
/** errno values we test for. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EACCES: 13,
  EEXIST: 17,
  ENOTDIR: 20,
  EINVAL: 22,
} as const;

/** The libc symbol table. */
export const LIBC_SYMBOLS = {
  /** `int open(const char *path, int flags)` (variadic mode omitted). */
  open: { parameters: ["buffer", "i32"], result: "i32" },
  /** `int close(int fd)`. */
  close: { parameters: ["i32"], result: "i32" },
  /** `ssize_t read(int fd, void *buf, size_t count)`. */
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** `ssize_t write(int fd, const void *buf, size_t count)`. */
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  /** `int socket(int domain, int type, int protocol)`. */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /**
   * `int setsockopt(int fd, int level, int optname, const void *optval,
   * socklen_t optlen)`.
   */
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  /** `ssize_t readlink(const char *path, char *buf, size_t size)`. */
  readlink: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  /** `int fstat(int fd, struct stat *buf)`. */
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  /** `int ioctl(int fd, unsigned long request)` (no third argument). */
  ioctl: { parameters: ["i32", "u64"], result: "i32" },
  /** `int setns(int fd, int nstype)`. */
  setns: { parameters: ["i32", "i32"], result: "i32" },
  /** `int unshare(int flags)`. */
  unshare: { parameters: ["i32"], result: "i32" },
  /**
   * `int mount(const char *source, const char *target, const char *fstype,
   * unsigned long flags, const void *data)`.
   */
  mount: {
    parameters: ["buffer", "buffer", "buffer", "u64", "pointer"],
    result: "i32",
  },
  /** `int umount2(const char *target, int flags)`. */
  umount2: { parameters: ["buffer", "i32"], result: "i32" },
  /** `int *__errno_location(void)`. */
  __errno_location: { parameters: [], result: "pointer" },
  /** `char *strerror(int errnum)`. */
  strerror: { parameters: ["i32"], result: "pointer" },
  /** `void abort(void)`. */
  abort: { parameters: [], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** libc, bound lazily. */
export const libc: LazyLibrary<typeof LIBC_SYMBOLS> = new LazyLibrary(
  "libc.so.6",
  LIBC_SYMBOLS,
);

/** Reads errno; call it right after the failing libc call. */
export function errno(): number {
  const ptr = libc.need("__errno_location").__errno_location();
  return ptr === null ? 0 : new Deno.UnsafePointerView(ptr).getInt32();
}

/** The text of an errno value. */
export function strerror(code: number): string {
  const ptr = libc.need("strerror").strerror(code);
  return ptr === null
    ? `errno ${code}`
    : Deno.UnsafePointerView.getCString(ptr);
}
