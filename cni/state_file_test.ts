import assert from "node:assert/strict";
import { readStateFile, withStateLock } from "./state_file.ts";

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "cnitest-state-" });
}

Deno.test("withStateLock() never loses an update across processes", async () => {
  const dir = await tempDir();
  const path = `${dir}/sub/state.json`;
  const mod = new URL("./state_file.ts", import.meta.url).href;
  const perChild = 15;
  const children = 6;
  const code = `
    import { withStateLock } from ${JSON.stringify(mod)};
    for (let i = 0; i < ${perChild}; i++) {
      await withStateLock(${JSON.stringify(path)}, async (f) => {
        const cur = (await f.read())?.n ?? 0;
        await new Promise((r) => setTimeout(r, 0));
        await f.write({ n: cur + 1 });
      });
    }
  `;
  const outs = await Promise.all(
    Array.from(
      { length: children },
      () =>
        new Deno.Command(Deno.execPath(), {
          args: ["eval", "--no-check", code],
          stdout: "null",
          stderr: "piped",
        }).output(),
    ),
  );
  for (const out of outs) {
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
  }
  const final = await withStateLock(path, (f) => f.read());
  assert.deepEqual(final, { n: perChild * children });
  assert.equal(((await Deno.stat(path)).mode ?? 0) & 0o777, 0o600);
  assert.equal(((await Deno.stat(`${path}.lock`)).mode ?? 0) & 0o777, 0o600);
  assert.equal(((await Deno.stat(`${dir}/sub`)).mode ?? 0) & 0o777, 0o755);
  const names = [];
  for await (const e of Deno.readDir(`${dir}/sub`)) names.push(e.name);
  assert.deepEqual(names.sort(), ["state.json", "state.json.lock"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() serialises parallel callers in one process", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      withStateLock(path, async (f) => {
        const cur = (await f.read() as { n: number } | undefined)?.n ?? 0;
        await new Promise((r) => setTimeout(r, 1));
        await f.write({ n: cur + 1 });
      })),
  );
  assert.deepEqual(await withStateLock(path, (f) => f.read()), { n: 20 });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() gives code 11 when the lock is held too long", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  let release = (): void => {};
  const held = new Promise<void>((r) => release = r);
  let locked = (): void => {};
  const isLocked = new Promise<void>((r) => locked = r);
  const holder = withStateLock(path, () => {
    locked();
    return held;
  });
  await isLocked;
  const t0 = Date.now();
  await assert.rejects(
    withStateLock(path, () => 1, { lockTimeoutMs: 150 }),
    {
      name: "CniError",
      code: 11,
      message: new RegExp(
        `^Cannot lock state file "${path}": timed out after 150 ms$`,
      ),
    },
  );
  const waited = Date.now() - t0;
  assert.ok(waited >= 150 && waited < 2000, `waited ${waited} ms`);
  release();
  await holder;
  // The lock is free again once the holder is done.
  assert.equal(await withStateLock(path, () => 2, { lockTimeoutMs: 150 }), 2);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() bounds a blocked wait with the injected timer", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  let release = (): void => {};
  let locked = (): void => {};
  const isLocked = new Promise<void>((r) => locked = r);
  const holder = withStateLock(path, () => {
    locked();
    return new Promise<void>((r) => release = r);
  });
  await isLocked;
  const sleeps: number[] = [];
  await assert.rejects(
    withStateLock(path, () => 1, {
      lockTimeoutMs: 100,
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
    }),
    { name: "CniError", code: 11, message: /timed out after 100 ms/ },
  );
  // One timer for the whole wait: no polling.
  assert.deepEqual(sleeps, [100]);
  release();
  await holder;
  // The timed-out waiter's orphaned lock() takes the lock when the holder
  // releases it and drops it at once: the lock is free again.
  assert.equal(await withStateLock(path, () => 3, { lockTimeoutMs: 2000 }), 3);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() hands the lock to a blocked waiter on release", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  const order: string[] = [];
  let release = (): void => {};
  let locked = (): void => {};
  const isLocked = new Promise<void>((r) => locked = r);
  const holder = withStateLock(path, async (f) => {
    locked();
    await f.write({ n: 1 });
    return new Promise<void>((r) => release = r).then(() => {
      order.push("holder done");
    });
  });
  await isLocked;
  const waiter = withStateLock(path, (f) => {
    order.push("waiter in");
    return f.read();
  }, { lockTimeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(order, []);
  release();
  await holder;
  assert.deepEqual(await waiter, { n: 1 });
  assert.deepEqual(order, ["holder done", "waiter in"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("readStateFile() reads a snapshot without the lock", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  assert.equal(await readStateFile(path), undefined);
  let release = (): void => {};
  let written = (): void => {};
  const isWritten = new Promise<void>((r) => written = r);
  const holder = withStateLock(path, async (f) => {
    await f.write({ n: 1 });
    written();
    return new Promise<void>((r) => release = r);
  });
  await isWritten;
  // The holder still has the lock: the reader does not wait for it.
  assert.deepEqual(await readStateFile(path), { n: 1 });
  release();
  await holder;
  await Deno.writeTextFile(path, "{");
  await assert.rejects(readStateFile(path), { name: "CniError", code: 102 });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LockedStateFile.read() handles missing, empty and corrupt files", async (t) => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  await t.step("missing gives undefined", async () => {
    assert.equal(await withStateLock(path, (f) => f.read()), undefined);
  });
  await t.step(
    "empty and whitespace-only give code 102, never empty state",
    async () => {
      for (const text of ["", "  \n\t "]) {
        await Deno.writeTextFile(path, text);
        await assert.rejects(
          withStateLock(path, (f) => f.read()),
          {
            name: "CniError",
            code: 102,
            message: /is corrupt \(empty\).*state repair/,
          },
        );
        assert.equal(await Deno.readTextFile(path), text);
      }
      for await (const e of Deno.readDir(dir)) {
        if (e.name.includes(".corrupt-")) await Deno.remove(`${dir}/${e.name}`);
      }
    },
  );
  await t.step("corrupt JSON gives code 102 and a copy aside", async () => {
    await Deno.writeTextFile(path, '{"n": 1,');
    await assert.rejects(
      withStateLock(path, (f) => f.read()),
      {
        name: "CniError",
        code: 102,
        message: new RegExp(
          `^State file "${path}" is corrupt \\(invalid JSON\\); a copy is kept at "${path}\\.corrupt-[0-9a-f]{16}".*deno task state repair`,
        ),
      },
    );
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    const aside = names.find((n) => n.startsWith("state.json.corrupt-"));
    assert.ok(aside !== undefined, names.join(","));
    assert.equal(await Deno.readTextFile(`${dir}/${aside}`), '{"n": 1,');
    // Never a silent reset: the original stays and keeps failing.
    assert.equal(await Deno.readTextFile(path), '{"n": 1,');
  });
  await t.step("write() replaces a corrupt file", async () => {
    await withStateLock(path, (f) => f.write({ ok: true }));
    assert.deepEqual(await withStateLock(path, (f) => f.read()), { ok: true });
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LockedStateFile throws when used after the lock is released", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  const leaked = await withStateLock(path, (f) => f);
  await assert.rejects(leaked.write({}), {
    name: "Error",
    message: /its lock was released/,
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() refuses a state or lock file that is a FIFO with code 5, without blocking", async (t) => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  const mkfifo = async (p: string) => {
    const out = await new Deno.Command("mkfifo", { args: [p] }).output();
    assert.ok(out.success, `mkfifo ${p}`);
  };
  await t.step("state file", async () => {
    await mkfifo(path);
    const start = performance.now();
    await assert.rejects(withStateLock(path, (f) => f.read()), {
      name: "CniError",
      code: 5,
      message:
        `The state file "${path}" is a FIFO, not a regular file; remove it`,
    });
    await assert.rejects(readStateFile(path), { code: 5 });
    assert.ok(performance.now() - start < 2000);
    await Deno.remove(path);
    await Deno.remove(`${path}.lock`);
  });
  await t.step("lock file", async () => {
    await mkfifo(`${path}.lock`);
    await assert.rejects(withStateLock(path, () => 1), {
      name: "CniError",
      code: 5,
      message: /lock file ".*\.lock" is a FIFO/,
    });
    await Deno.remove(`${path}.lock`);
  });
  await t.step("a directory", async () => {
    await Deno.mkdir(path);
    await assert.rejects(withStateLock(path, (f) => f.read()), {
      code: 5,
      message: /is a directory/,
    });
    await Deno.remove(path);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() sweeps the temp files of interrupted writers and nothing else", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  const old = new Date(Date.now() - 120_000);
  await Deno.writeTextFile(`${path}.tmp-4242-deadbeef`, "");
  await Deno.writeTextFile(`${path}.corrupt-0123456789abcdef.tmp-1-a`, "x");
  await Deno.utime(`${path}.corrupt-0123456789abcdef.tmp-1-a`, old, old);
  // A copy in progress (young), a kept copy and another file stay.
  await Deno.writeTextFile(`${path}.corrupt-fedcba9876543210.tmp-2-b`, "x");
  await Deno.writeTextFile(`${path}.corrupt-fedcba9876543210`, "{");
  await Deno.writeTextFile(`${dir}/other.json.tmp-1-c`, "");
  // A sweep happens under the lock even when nothing is written (a DEL).
  await withStateLock(path, () => {});
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  assert.deepEqual(names.sort(), [
    "other.json.tmp-1-c",
    "state.json.corrupt-fedcba9876543210",
    "state.json.corrupt-fedcba9876543210.tmp-2-b",
    "state.json.lock",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LockedStateFile.read() keeps one corrupt copy per distinct content across retries", async () => {
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  const copies = async () => {
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) {
      if (e.name.includes(".corrupt-")) names.push(e.name);
    }
    return names.sort();
  };
  await Deno.writeTextFile(path, '{"n": 1,' + " ".repeat(100_000));
  for (let i = 0; i < 5; i++) {
    await assert.rejects(withStateLock(path, (f) => f.read()), { code: 102 });
    await assert.rejects(readStateFile(path), { code: 102 });
  }
  assert.equal((await copies()).length, 1);
  await Deno.writeTextFile(path, "");
  await assert.rejects(readStateFile(path), { code: 102 });
  await assert.rejects(readStateFile(path), { code: 102 });
  const names = await copies();
  assert.equal(names.length, 2);
  for (const n of names) {
    assert.equal(((await Deno.stat(`${dir}/${n}`)).mode ?? 0) & 0o777, 0o600);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() holds the lock of the file at the path, not of one deleted while it waited", async () => {
  // The Go azure-vnet (#17) deletes `<file>.lock` on unlock: a waiter
  // blocked on that file must not run beside a caller of the new one.
  const dir = await tempDir();
  const path = `${dir}/state.json`;
  const events: string[] = [];
  const gate = () => {
    let open = () => {};
    const shut = new Promise<void>((resolve) => open = resolve);
    return { shut, open };
  };
  const until = async (event: string) => {
    while (!events.includes(event)) await delay(5);
  };
  const holdA = gate();
  const holdC = gate();
  const a = withStateLock(path, async () => {
    events.push("a in");
    await holdA.shut;
    events.push("a out");
  });
  await until("a in");
  const b = withStateLock(path, () => {
    events.push("b in");
  });
  await delay(50);
  await Deno.remove(`${path}.lock`);
  const c = withStateLock(path, async () => {
    events.push("c in");
    await holdC.shut;
    events.push("c out");
  });
  await until("c in");
  holdA.open();
  await a;
  await delay(100);
  assert.ok(!events.includes("b in"), events.join(", "));
  holdC.open();
  await Promise.all([b, c]);
  assert.deepEqual(events, ["a in", "c in", "a out", "c out", "b in"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("withStateLock() works under permissions granted on a symlinked state dir only", async () => {
  // /var/run is a symlink to /run on systemd hosts and in the image, and
  // the launchers grant /var/run: Deno checks some file operations against
  // the real path.
  const dir = await tempDir();
  const real = `${dir}/run`;
  const link = `${dir}/var-run`;
  await Deno.mkdir(real);
  await Deno.symlink(real, link);
  const mod = new URL("./state_file.ts", import.meta.url).href;
  const path = `${link}/state.json`;
  const code = `
    import { withStateLock } from ${JSON.stringify(mod)};
    const n = await withStateLock(${JSON.stringify(path)}, async (f) => {
      const cur = (await f.read())?.n ?? 0;
      await f.write({ n: cur + 1 });
      return cur + 1;
    });
    console.log(n);
  `;
  // `deno eval` takes every permission: a script of its own.
  const script = `${dir}/child.ts`;
  await Deno.writeTextFile(script, code);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      `--allow-read=${link}`,
      `--allow-write=${link}`,
      script,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "1");
  assert.deepEqual(await readStateFile(`${real}/state.json`), { n: 1 });
  await Deno.remove(dir, { recursive: true });
});
