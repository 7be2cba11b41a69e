/**
 * Builds `dist/`: filled in with the plugins (issue #7).
 *
 * @module
 */
if (import.meta.main) {
  Deno.exit(0);
}
