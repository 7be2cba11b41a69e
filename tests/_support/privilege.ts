/**
 * The privilege check every privileged test runs first.
 *
 * @module
 */

/**
 * Throws unless the process runs as root, naming the way out.
 *
 * @throws {Error} When not root.
 */
export function requireRoot(): void {
  if (Deno.uid() !== 0) {
    throw new Error(
      "Cannot run privileged test: not root; run `deno task test:unit` for the unprivileged tier",
    );
  }
}
