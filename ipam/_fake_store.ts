/**
 * An in-memory {@link IpamStore} for unit tests: serialised updates, copies
 * in and out (as a file would), and counters. Like `FileStore`, an update
 * gets {@link copyIpamState} of a deep-frozen state, so that editing an
 * address record instead of replacing it throws here too.
 *
 * @module
 */
import { deepFreeze } from "@vnet/cni";
import { copyIpamState, type IpamState } from "./state.ts";
import type { IpamStore, StoreUpdate } from "./store.ts";

/** In-memory store with read/write counters. */
export class FakeStore implements IpamStore {
  /** A fake path for messages. */
  readonly path = "/fake/azure-vnet-ipam.json";
  /** Number of updates run. */
  reads = 0;
  /** Number of saves. */
  writes = 0;
  #json: string | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  /** Creates the store, optionally with a state. */
  constructor(state?: IpamState) {
    this.#json = state === undefined ? undefined : JSON.stringify(state);
  }

  /** The saved state (a copy), or undefined. */
  get state(): IpamState | undefined {
    return this.#json === undefined
      ? undefined
      : JSON.parse(this.#json) as IpamState;
  }

  /** Runs `fn` serialised with other updates. */
  update<T>(fn: (state: IpamState | undefined) => StoreUpdate<T>): Promise<T> {
    const run = this.#queue.then(() => {
      this.reads++;
      const out = fn(copyIpamState(deepFreeze(this.state)));
      if (out.next !== undefined) {
        this.writes++;
        this.#json = JSON.stringify(out.next);
      }
      return out.value;
    });
    this.#queue = run.catch(() => {});
    return run;
  }
}
