/**
 * The lazy binder behind the three symbol tables: a library is opened on the
 * first call that needs one of its symbols, and only the symbols a verb asks
 * for are bound (each costs about 0.1 ms). Bound symbols are cached for the
 * process; the libraries are never closed, because calling a symbol after
 * `close()` crashes the process.
 *
 * @module
 */

/** The callable symbols of a table `S`. */
export type Symbols<S extends Deno.ForeignLibraryInterface> =
  Deno.StaticForeignLibraryInterface<S>;

/** The symbols `K` of `S` bound `nonblocking`: each returns a Promise. */
export type NonblockingSymbols<
  S extends Deno.ForeignLibraryInterface,
  K extends keyof S,
> = Deno.StaticForeignLibraryInterface<
  { [N in K]: S[N] & { nonblocking: true } }
>;

/** A library whose symbols are bound on demand, a few at a time. */
export class LazyLibrary<S extends Deno.ForeignLibraryInterface> {
  readonly #soname: string;
  readonly #envVar: string | undefined;
  readonly #table: S;
  readonly #bound: Record<string, unknown> = {};
  readonly #boundNonblocking: Record<string, unknown> = {};

  /**
   * Describes a library without loading it.
   *
   * @param soname The versioned soname, such as `libnl-3.so.200`.
   * @param table The symbol table.
   * @param options `envVar` names an environment variable that overrides the
   *   path.
   */
  constructor(soname: string, table: S, options: { envVar?: string } = {}) {
    this.#soname = soname;
    this.#table = table;
    this.#envVar = options.envVar;
  }

  /**
   * Returns the named symbols, binding those not bound yet in one `dlopen`.
   *
   * @param names The symbol names a verb needs.
   * @returns An object with (at least) those symbols.
   * @throws {Deno.errors.PermissionDenied} Without `--allow-ffi`.
   * @throws {Error} When the library or a symbol cannot be loaded.
   */
  need<K extends keyof S & string>(
    ...names: K[]
  ): Pick<Symbols<S>, K> {
    let missing: Record<string, Deno.ForeignFunction> | undefined;
    for (const name of names) {
      if (name in this.#bound) continue;
      missing ??= {};
      missing[name] = this.#table[name] as Deno.ForeignFunction;
    }
    if (missing !== undefined) Object.assign(this.#bound, this.#open(missing));
    return this.#bound as Pick<Symbols<S>, K>;
  }

  /**
   * Like {@link LazyLibrary.need}, but each symbol is bound `nonblocking`:
   * the call runs on a thread of Deno's blocking pool and returns a
   * Promise, so the JS thread serves other work while the kernel waits.
   * The caller must not use the same libnl socket in the meantime.
   *
   * @param names The symbol names.
   * @returns An object with (at least) those symbols, each async.
   * @throws {Deno.errors.PermissionDenied} Without `--allow-ffi`.
   * @throws {Error} When the library or a symbol cannot be loaded.
   */
  needNonblocking<K extends keyof S & string>(
    ...names: K[]
  ): NonblockingSymbols<S, K> {
    let missing: Record<string, Deno.ForeignFunction> | undefined;
    for (const name of names) {
      if (name in this.#boundNonblocking) continue;
      missing ??= {};
      missing[name] = {
        ...this.#table[name] as Deno.ForeignFunction,
        nonblocking: true,
      };
    }
    if (missing !== undefined) {
      Object.assign(this.#boundNonblocking, this.#open(missing));
    }
    return this.#boundNonblocking as NonblockingSymbols<S, K>;
  }

  /** One `dlopen` of the library for `symbols`. */
  #open(symbols: Record<string, Deno.ForeignFunction>): object {
    const path = this.#path();
    try {
      return Deno.dlopen(path, symbols).symbols;
    } catch (e) {
      if (
        e instanceof Deno.errors.PermissionDenied ||
        e instanceof Deno.errors.NotCapable
      ) {
        throw e;
      }
      throw new Error(`Cannot load library "${path}"`, { cause: e });
    }
  }

  #path(): string {
    if (this.#envVar === undefined) return this.#soname;
    try {
      const override = Deno.env.get(this.#envVar);
      if (override !== undefined && override !== "") return override;
    } catch {
      // Without --allow-env the override is simply not available.
    }
    return this.#soname;
  }
}

const ENCODER = new TextEncoder();

/** A NUL-terminated copy of `text` for a `"buffer"` parameter. */
export function cstr(text: string): Uint8Array<ArrayBuffer> {
  return ENCODER.encode(`${text}\0`);
}

/** Reads a C string, or `""` for a null pointer. */
export function readCString(ptr: Deno.PointerValue): string {
  return ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
}
