/**
 * Entry point of the NIC tool: `provision` grows or shrinks the node's NIC
 * to N IP configurations through ARM.
 *
 * @module
 */
import { main } from "./cli.ts";

Deno.exit(await main(Deno.args));
