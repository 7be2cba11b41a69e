/**
 * The agent's readiness: the conditions under which it answers forwarded
 * calls but does not do all of its job, which `azure-vnet-agent probe
 * --ready` (the DaemonSet's readiness probe) and `azure_vnet_agent_ready`
 * report. Liveness (`probe` alone) asks only whether it answers.
 *
 * The conditions are named: `reconcile` (the startup reconcile failed; the
 * agent retries it while it serves) and `ebtables` (the node's `ebtables`
 * is not the agent's; until a restart).
 *
 * @module
 */

/**
 * Named conditions that make the agent not ready, each with its reason.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Readiness } from "./readiness.ts";
 * const r = new Readiness();
 * assert.equal(r.reason, undefined);
 * r.fail("reconcile", "the state lock was busy");
 * assert.equal(r.reason, "reconcile: the state lock was busy");
 * r.clear("reconcile");
 * assert.ok(r.ready);
 * ```
 */
export class Readiness {
  #failed = new Map<string, string>();

  /**
   * Marks a condition failed (again: the reason is replaced).
   *
   * @param name The condition.
   * @param reason Why, one line.
   */
  fail(name: string, reason: string): void {
    this.#failed.set(name, reason);
  }

  /**
   * Marks a condition met.
   *
   * @param name The condition.
   */
  clear(name: string): void {
    this.#failed.delete(name);
  }

  /** True while no condition has failed. */
  get ready(): boolean {
    return this.#failed.size === 0;
  }

  /** Every failed condition, `name: reason`, joined by `; `; or undefined. */
  get reason(): string | undefined {
    if (this.#failed.size === 0) return undefined;
    return [...this.#failed].map(([n, r]) => `${n}: ${r}`).join("; ");
  }
}
