/**
 * `deno task install`: installs the plugins and `10-azure.conflist`.
 *
 * @module
 */
import { runInstallerCli } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await runInstallerCli(Deno.args));
}
