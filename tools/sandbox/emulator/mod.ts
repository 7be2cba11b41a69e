/**
 * The Azure emulator for tests and the sandbox: wireserver, IMDS, tokens
 * and ARM network interfaces over one shared state.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { addVm, emptyState, startEmulator } from "./mod.ts";
 *
 * const state = emptyState();
 * addVm(state, { name: "vm0" });
 * await using emu = await startEmulator({ state });
 * assert.match(emu.httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
 * ```
 *
 * @module
 */
export * from "./emulator.ts";
export * from "./state.ts";
export * from "./tls.ts";
