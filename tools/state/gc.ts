/**
 * `state gc`: reconciles the state files with what really exists, with the
 * plugin's own reconcile (`reconcileState` of `@vnet/azure-vnet`, which the
 * agent runs on start too): stale endpoints, kernel leftovers of
 * interrupted ADDs (veths, per-pod rules, neighbours) and reservations
 * without a record.
 *
 * @module
 */
export {
  type ReconcileAction as GcAction,
  type ReconcileOptions as GcOptions,
  type ReconcileReport as GcReport,
  reconcileState as gcState,
} from "@vnet/azure-vnet";
