import assert from "node:assert/strict";
import { readLink } from "./read_link.ts";

Deno.test("readLink() reads a link's raw target, undefined for no link, NotFound for nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/file`, "");
    await Deno.symlink("file", `${dir}/rel`);
    await Deno.symlink("/etc/alternatives/none", `${dir}/abs`);
    assert.equal(readLink(`${dir}/rel`), "file");
    // Not followed: the target need not exist.
    assert.equal(readLink(`${dir}/abs`), "/etc/alternatives/none");
    assert.equal(readLink(`${dir}/file`), undefined);
    assert.equal(readLink(dir), undefined);
    // Through a link in the leading components, as /proc/1/root is one.
    assert.equal(readLink(`/proc/self/root${dir}/rel`), "file");
    for (const path of [`${dir}/absent`, `${dir}/file/below`]) {
      assert.throws(() => readLink(path), {
        name: "NotFound",
        message: /Cannot readlink ".*": (No such file|Not a directory)/,
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test(
  "readLink() reads /proc's links, which Deno's file APIs refuse without --allow-all",
  {
    permissions: { ffi: true },
  },
  () => {
    assert.match(readLink("/proc/self/ns/mnt") ?? "", /^mnt:\[\d+\]$/);
  },
);
