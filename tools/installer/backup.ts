/**
 * Backups of foreign files: what an install finds where it writes its own
 * files and no install of ours wrote (the Go plugin's `azure-vnet`, AKS's
 * own `10-azure.conflist`). Each is kept beside as `<path>.pre-azure-vnet`,
 * a hard link made before the file is replaced, recorded in the install
 * manifest, and renamed back by `--uninstall` (or by an install that no
 * longer writes that path), so a node is never left without the CNI it had.
 *
 * @module
 */
import { exists, removeIfThere, sha256 } from "./_files.ts";

/**
 * Appended to a foreign file's path to name its backup. No runtime loads
 * it: libcni takes only `.conf`, `.conflist` and `.json` files, and a
 * runtime runs only the plugin `type`s a conflist names.
 */
export const BACKUP_SUFFIX = ".pre-azure-vnet";

/** A foreign file kept aside, as the install manifest records it. */
export interface BackupRecord {
  /** The path the installer writes its own file to. */
  path: string;
  /** Where the foreign file is kept (`path` + {@link BACKUP_SUFFIX}). */
  backup: string;
  /** The foreign file's identity ({@link fileIdentity}). */
  sha256: string;
}

/** What {@link planBackups} decided. */
export interface BackupPlan {
  /** Every record the manifest keeps: carried over and new. */
  records: BackupRecord[];
  /** The records whose backup is still to be made ({@link makeBackup}). */
  pending: BackupRecord[];
}

/**
 * The identity of what is at `path`: the SHA-256 of a regular file's
 * bytes, or of `symlink:<target>` for a symlink (which is kept as a
 * symlink). Nothing, a directory or anything else has none.
 *
 * @param path The path.
 * @returns The hex digest, or undefined.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { fileIdentity } from "./backup.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "x");
 * assert.equal((await fileIdentity(`${dir}/f`))?.length, 64);
 * assert.equal(await fileIdentity(`${dir}/none`), undefined);
 * assert.equal(await fileIdentity(dir), undefined);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function fileIdentity(path: string): Promise<string | undefined> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  if (info.isSymlink) return sha256(`symlink:${await Deno.readLink(path)}`);
  if (!info.isFile) return undefined;
  return sha256(await Deno.readFile(path));
}

/**
 * Decides which files an install keeps aside before it writes `paths`.
 *
 * - An earlier record whose backup is there stays, unless the file at its
 *   path is foreign again and another than the one kept (someone wrote
 *   theirs over ours since): then that one is kept instead.
 * - An earlier record whose backup is missing while its path still holds
 *   the foreign file (an install stopped between its manifest and the
 *   backup) is made now; otherwise the backup is gone and it is dropped.
 * - A file at a path without a record that `owned` does not claim is
 *   foreign: it gets a new record.
 * - Records of other paths are carried over unchanged (an install that no
 *   longer writes a path gives its file back).
 *
 * @param paths The paths the install writes.
 * @param options `earlier`: the earlier manifest's records; `owned(path)`:
 *   whether what is at `path` was written by an install of ours.
 * @returns The records to keep and those whose backup is to be made.
 * @throws {Deno.errors.AlreadyExists} When a foreign file's backup path
 *   holds another file that no record names: that may be what a lost
 *   manifest recorded, so nothing is overwritten.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { planBackups } from "./backup.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/azure-vnet`, "the Go plugin");
 * const plan = await planBackups([`${dir}/azure-vnet`, `${dir}/x`], {
 *   earlier: [],
 *   owned: () => false,
 * });
 * assert.deepEqual(plan.pending.map((r) => r.backup), [
 *   `${dir}/azure-vnet.pre-azure-vnet`,
 * ]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function planBackups(
  paths: readonly string[],
  options: {
    earlier: readonly BackupRecord[];
    owned: (path: string) => boolean | Promise<boolean>;
  },
): Promise<BackupPlan> {
  const records: BackupRecord[] = [];
  const pending: BackupRecord[] = [];
  for (const path of new Set(paths)) {
    const rec = options.earlier.find((r) => r.path === path);
    if (rec !== undefined) {
      const ours = await options.owned(path);
      const now = ours ? undefined : await fileIdentity(path);
      if (await exists(rec.backup)) {
        if (now === undefined || now === rec.sha256) {
          records.push(rec);
        } else {
          const again = { ...rec, sha256: now };
          records.push(again);
          pending.push(again);
        }
        continue;
      }
      if ((now ?? await fileIdentity(path)) === rec.sha256) {
        records.push(rec);
        pending.push(rec);
        continue;
      }
      // The backup is gone and the file is not the one it kept.
    }
    if (await options.owned(path)) continue;
    const id = await fileIdentity(path);
    if (id === undefined) continue;
    const backup = `${path}${BACKUP_SUFFIX}`;
    const record = { path, backup, sha256: id };
    if (await exists(backup)) {
      if (await fileIdentity(backup) !== id) {
        throw new Deno.errors.AlreadyExists(
          `Cannot keep "${path}" aside: "${backup}" is there already and no install recorded it; move one of them away`,
        );
      }
      records.push(record);
      continue;
    }
    records.push(record);
    pending.push(record);
  }
  for (const r of options.earlier) {
    if (!paths.includes(r.path)) records.push(r);
  }
  return { records, pending };
}

/**
 * Keeps the file at `record.path` aside: a hard link at `record.backup`
 * (through a temp name, so the backup appears whole or not at all, and
 * replaces an older one), leaving the file in place until the install
 * renames its own over it. Nothing there: nothing to keep.
 *
 * @param record The record from {@link planBackups}.
 * @throws {Deno.errors.PermissionDenied} Or another error of link(2).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { makeBackup } from "./backup.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "theirs");
 * await makeBackup({ path: `${dir}/f`, backup: `${dir}/f.b`, sha256: "" });
 * assert.equal(await Deno.readTextFile(`${dir}/f.b`), "theirs");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function makeBackup(record: BackupRecord): Promise<void> {
  const tmp = `${record.backup}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.link(record.path, tmp);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  try {
    await Deno.rename(tmp, record.backup);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * Gives a foreign file back: its backup is renamed over whatever is at its
 * path (atomically: the path never lacks a file).
 *
 * @param record The record.
 * @returns `"restored"` when renamed now; `"in-place"` when the backup is
 *   gone but the path holds the foreign file (an earlier uninstall got that
 *   far); `"lost"` when the backup is gone and the path holds something
 *   else (the caller removes ours).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { giveBack } from "./backup.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "ours");
 * await Deno.writeTextFile(`${dir}/f.b`, "theirs");
 * const record = { path: `${dir}/f`, backup: `${dir}/f.b`, sha256: "" };
 * assert.equal(await giveBack(record), "restored");
 * assert.equal(await Deno.readTextFile(`${dir}/f`), "theirs");
 * assert.equal(await giveBack(record), "lost");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function giveBack(
  record: BackupRecord,
): Promise<"restored" | "in-place" | "lost"> {
  try {
    await Deno.rename(record.backup, record.path);
    return "restored";
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return await fileIdentity(record.path) === record.sha256
    ? "in-place"
    : "lost";
}

/**
 * Takes an install's file away from `path`: the foreign file a record
 * keeps for it is given back ({@link giveBack}), else ours is removed.
 *
 * @param path A path an install wrote.
 * @param records The manifest's backup records.
 * @returns `"restored"` (the foreign file is back now), `"removed"` (ours
 *   is gone), or `"none"` (nothing to do: gone already, or given back by an
 *   earlier run).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { takeBack } from "./backup.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/f`, "ours");
 * assert.equal(await takeBack(`${dir}/f`, []), "removed");
 * assert.equal(await takeBack(`${dir}/f`, []), "none");
 * await Deno.remove(dir);
 * ```
 */
export async function takeBack(
  path: string,
  records: readonly BackupRecord[],
): Promise<"restored" | "removed" | "none"> {
  const r = records.find((b) => b.path === path);
  const how = r === undefined ? "lost" : await giveBack(r);
  if (how === "restored") return "restored";
  if (how === "lost" && await removeIfThere(path)) return "removed";
  return "none";
}
