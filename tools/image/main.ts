/**
 * `deno task image`: builds the DaemonSet image with podman.
 *
 * @module
 */
import { runImageCli } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await runImageCli(Deno.args));
}
