/**
 * `deno task bench`: see `bench.ts`.
 *
 * @module
 */
import { main } from "./bench.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
