/**
 * @vnet/arm: a NIC's IP configurations through Azure Resource Manager with
 * the Azure SDK (`@azure/arm-network`, `@azure/identity`), loaded lazily.
 * Shared by the NIC tool and the agent's warm pool (#16); the plugins never
 * import it (docs/STYLE.md section 2).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { classifyArmError } from "@vnet/arm";
 * assert.equal(classifyArmError(new TypeError("fetch failed")).result, "network_error");
 * ```
 *
 * @module
 */
export {
  ArmConflictError,
  type ArmFailure,
  ArmOperationError,
  type ArmResult,
  classifyArmError,
} from "./errors.ts";
export type { RetriedAttempt } from "./_read_retry.ts";
export {
  type ArmNic,
  type IpConfigChange,
  type IpConfigModel,
  ipConfigUpdateBody,
  isIpv6Config,
  type NicGetOptions,
  type NicModel,
  type NicRef,
  openNic,
  type OpenNicOptions,
  parseNicId,
} from "./nic.ts";
