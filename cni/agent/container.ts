/**
 * Whether the agent runs in a container of its own (the DaemonSet) or on
 * the host (the systemd unit, or by hand): a container has a file system
 * of its own, so a delegate IPAM plugin that the agent exec'd would keep
 * its state (host-local's `dataDir`) there, where the plugins' fallback on
 * the host never sees it, and a re-created container loses it. An agent in
 * a container hands such calls back (`hand_back.ts`).
 *
 * `AZURE_VNET_AGENT_IN_CONTAINER` says it (`true` or `false`; the DaemonSet
 * sets `true`). Unset, the agent compares its mount namespace with PID 1's
 * (the host's init, under `hostPID`): the same namespace is the host; a
 * different one, or one it cannot read, counts as a container, since
 * handing a call back is always correct and only costs the fallback's
 * process start.
 *
 * @module
 */

/** The variable that says where the agent runs. */
export const IN_CONTAINER_VAR = "AZURE_VNET_AGENT_IN_CONTAINER";

/** Where the agent runs, and how it knows. */
export interface AgentPlacement {
  /** True in a container of its own, with a file system of its own. */
  readonly inContainer: boolean;
  /** How that was decided, for the log. */
  readonly why: string;
}

/** Options of {@link agentPlacement}. */
export interface AgentPlacementOptions {
  /**
   * Reads a link's target (`readLink` of `@vnet/netlink`, through libc:
   * Deno's file APIs refuse `/proc`): undefined for no link; throws when
   * it cannot.
   */
  readonly readLink: (path: string) => string | undefined;
}

/**
 * Decides where the agent runs: `AZURE_VNET_AGENT_IN_CONTAINER` when set,
 * else `/proc/self/ns/mnt` against `/proc/1/ns/mnt`.
 *
 * @param env The process environment.
 * @param options The link reader.
 * @returns Where it runs, and why it says so.
 * @throws {RangeError} When the variable is neither `true` nor `false`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { agentPlacement } from "./container.ts";
 * const readLink = (p: string) => p.startsWith("/proc/1/") ? "mnt:[1]" : "mnt:[2]";
 * assert.equal(agentPlacement({}, { readLink }).inContainer, true);
 * assert.equal(
 *   agentPlacement({ AZURE_VNET_AGENT_IN_CONTAINER: "false" }, { readLink })
 *     .inContainer,
 *   false,
 * );
 * ```
 */
export function agentPlacement(
  env: Readonly<Record<string, string | undefined>>,
  options: AgentPlacementOptions,
): AgentPlacement {
  const value = (env[IN_CONTAINER_VAR] ?? "").trim().toLowerCase();
  if (value === "true" || value === "false") {
    return {
      inContainer: value === "true",
      why: `${IN_CONTAINER_VAR}=${value}`,
    };
  }
  if (value !== "") {
    throw new RangeError(
      `Invalid ${IN_CONTAINER_VAR} "${
        env[IN_CONTAINER_VAR]
      }": use true or false`,
    );
  }
  let mine: string | undefined;
  let init: string | undefined;
  try {
    mine = options.readLink("/proc/self/ns/mnt");
    init = options.readLink("/proc/1/ns/mnt");
  } catch (err) {
    return {
      inContainer: true,
      why:
        `${IN_CONTAINER_VAR} is unset and PID 1's mount namespace cannot be read (${
          err instanceof Error ? err.message : String(err)
        }): taken for a container`,
    };
  }
  if (mine === undefined || init === undefined) {
    return {
      inContainer: true,
      why:
        `${IN_CONTAINER_VAR} is unset and /proc shows no mount namespaces: taken for a container`,
    };
  }
  return mine === init
    ? {
      inContainer: false,
      why: `${IN_CONTAINER_VAR} is unset; PID 1's mount namespace is ours`,
    }
    : {
      inContainer: true,
      why:
        `${IN_CONTAINER_VAR} is unset; PID 1's mount namespace (${init}) is not ours (${mine})`,
    };
}
