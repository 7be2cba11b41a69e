/**
 * Entry point of the Azure emulator (wireserver, IMDS, ARM).
 *
 * @module
 */
import { main } from "./cli.ts";

Deno.exit(await main(Deno.args));
