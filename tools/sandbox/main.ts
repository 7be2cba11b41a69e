/**
 * `deno task sandbox`: an emulated Azure VNET in namespaces running the real
 * plugins end to end.
 *
 * @module
 */
import { main } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
