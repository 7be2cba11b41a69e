/**
 * One attachment's lock: an ADD or DEL holds it from start to end, so that
 * the reconcile (the agent's start, `deno task state gc`) leaves alone what
 * a call still at work has made and not recorded yet: its host veth, its
 * rules and neighbour, its reservation.
 *
 * Before, an ADD was told from leftovers only by a second look two seconds
 * later. An ADD waiting longer on a state lock (a burst of in-process ADDs
 * while an agent restarts) lost its veth and its address. A lock held by a
 * live call says so whatever the wait, and one whose process died is free:
 * what a killed ADD left is still collected.
 *
 * The lock file is `<state dir>/azure-vnet-attachments/<host veth>.lock`:
 * the host veth's name derives from network, container and interface
 * (`names.ts`), so a leftover veth names its lock, and a reservation (whose
 * record names them) does too. A DEL that finished removes the file; the
 * reconcile removes those of attachments that are gone.
 *
 * @module
 */
import { fileLockHeld, type StateFileOptions, withFileLock } from "@vnet/cni";

/** The directory of the attachments' locks, in the state dir. */
export const ATTACHMENT_LOCK_DIR = "azure-vnet-attachments";

/** The path an attachment's lock guards (its file is `${path}.lock`). */
function guarded(stateDir: string, hostVeth: string): string {
  return `${stateDir}/${ATTACHMENT_LOCK_DIR}/${hostVeth}`;
}

/**
 * Runs `fn` holding the lock of the attachment whose host veth is
 * `hostVeth`.
 *
 * @param spec The state dir, the host veth, and the lock options.
 * @param fn The work.
 * @returns `fn`'s value.
 * @throws {CniError} 11 when another call holds it past the lock timeout;
 * what `fn` throws.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { attachmentBusy, withAttachmentLock } from "./attachment_lock.ts";
 * const stateDir = await Deno.makeTempDir();
 * const spec = { stateDir, hostVeth: "azv0123456789a" };
 * assert.ok(await withAttachmentLock(spec, () => attachmentBusy(spec)));
 * assert.ok(!await attachmentBusy(spec));
 * await Deno.remove(stateDir, { recursive: true });
 * ```
 */
export async function withAttachmentLock<T>(
  spec: { stateDir: string; hostVeth: string; lock?: StateFileOptions },
  fn: () => Promise<T>,
): Promise<T> {
  return await withFileLock(
    guarded(spec.stateDir, spec.hostVeth),
    fn,
    spec.lock,
  );
}

/**
 * Whether a call holds the lock of the attachment whose host veth is
 * `hostVeth` now.
 *
 * @param spec The state dir and the host veth.
 * @returns True while an ADD or DEL of it runs.
 */
export async function attachmentBusy(
  spec: { stateDir: string; hostVeth: string },
): Promise<boolean> {
  return await fileLockHeld(guarded(spec.stateDir, spec.hostVeth));
}

/**
 * The host veths of the attachments that have a lock file.
 *
 * @param stateDir The state dir.
 * @returns Their names; none without the directory.
 * @throws {Error} When the directory cannot be read for another reason.
 */
export async function attachmentLockVeths(stateDir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(`${stateDir}/${ATTACHMENT_LOCK_DIR}`)) {
      if (e.isFile && e.name.endsWith(".lock") && e.name.length > 5) {
        out.push(e.name.slice(0, -5));
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}

/**
 * How long ago the attachment's lock file was last written (made); undefined
 * without one.
 *
 * @param spec The state dir and the host veth.
 * @returns The age in ms.
 */
export async function attachmentLockAge(
  spec: { stateDir: string; hostVeth: string },
): Promise<number | undefined> {
  try {
    const st = await Deno.stat(`${guarded(spec.stateDir, spec.hostVeth)}.lock`);
    return Date.now() - (st.mtime?.getTime() ?? Date.now());
  } catch {
    return undefined;
  }
}

/**
 * Removes the lock file of an attachment that is gone, while its lock is
 * held (a call that opened the file meanwhile finds it replaced, and locks
 * the one at the path then). Absent is fine.
 *
 * @param spec The state dir and the host veth.
 */
export async function forgetAttachmentLock(
  spec: { stateDir: string; hostVeth: string },
): Promise<void> {
  await Deno.remove(`${guarded(spec.stateDir, spec.hostVeth)}.lock`).catch(
    (err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    },
  );
}
