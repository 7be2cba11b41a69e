/**
 * Test helpers of the forwarder and the agent (test files only).
 *
 * @module
 */

/**
 * A stdin that yields `text` in one read, then EOF.
 *
 * @param text The bytes to hand out, as text.
 * @returns A `read()`-able source.
 */
export function stdinOf(text: string): Pick<Deno.FsFile, "read"> {
  const bytes = new TextEncoder().encode(text);
  let done = false;
  return {
    read(p: Uint8Array): Promise<number | null> {
      if (done) return Promise.resolve(null);
      done = true;
      p.set(bytes);
      return Promise.resolve(bytes.length);
    },
  };
}
