/**
 * `deno task build` / `deno task compile`: builds `dist/azure-vnet` and
 * `dist/azure-vnet-ipam`.
 *
 * @module
 */
import { runBuildCli } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await runBuildCli(Deno.args));
}
