/**
 * `deno task state teardown|show|gc|repair`: see `cli.ts`.
 *
 * @module
 */
import { runStateCli } from "./cli.ts";

if (import.meta.main) {
  Deno.exit(await runStateCli(Deno.args));
}
