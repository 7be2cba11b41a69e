/**
 * A small `/proc` file read with sync libc calls. Deno's file APIs refuse
 * `/proc` to anything short of `--allow-all` (`docs/STYLE.md` section 6);
 * through FFI, `--allow-ffi` suffices.
 *
 * @module
 */
import { cstr } from "./_ffi/_lazy.ts";
import { errno, libc, O_RDONLY_CLOEXEC } from "./_ffi/libc.ts";

const SYMBOLS = ["open", "close", "read", "__errno_location"] as const;

/**
 * Reads a `/proc` file of at most 4 KiB (a longer one is cut there).
 *
 * @param path The file.
 * @param fail Makes the error of a failed `open` or `read` from its errno.
 * @returns The text, trimmed.
 */
export function readProcText(
  path: string,
  fail: (code: number) => Error,
): string {
  const f = libc.need(...SYMBOLS);
  const fd = f.open(cstr(path), O_RDONLY_CLOEXEC);
  if (fd < 0) throw fail(errno());
  try {
    const buf = new Uint8Array(4096);
    let len = 0;
    for (;;) {
      const n = Number(
        f.read(fd, buf.subarray(len), BigInt(buf.length - len)),
      );
      if (n < 0) throw fail(errno());
      if (n === 0 || len + n >= buf.length) {
        len += n;
        break;
      }
      len += n;
    }
    return new TextDecoder().decode(buf.subarray(0, len)).trim();
  } finally {
    f.close(fd);
  }
}
