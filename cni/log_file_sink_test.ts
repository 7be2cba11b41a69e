import assert from "node:assert/strict";
import { LogFileSink, makeLogDir } from "./log_file_sink.ts";

async function names(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

function modeOf(st: Deno.FileInfo): number {
  return (st.mode ?? 0) & 0o777;
}

Deno.test("LogFileSink.flush() rotates before a flush that would pass maxBytes and keeps keep old files", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/p.log`;
  {
    await using sink = new LogFileSink(path, { maxBytes: 20, keep: 2 });
    for (const n of ["a", "b", "c", "d"]) {
      sink.writeLine(`${n.repeat(9)}\n`);
      await sink.flush();
    }
  }
  // a and b fill p.log (20 bytes), so c rotates them to p.log.1.
  assert.deepEqual(await names(dir), ["p.log", "p.log.1", "p.log.lock"]);
  assert.equal(await Deno.readTextFile(`${path}.1`), "aaaaaaaaa\nbbbbbbbbb\n");
  assert.equal(await Deno.readTextFile(path), "ccccccccc\nddddddddd\n");
  {
    await using sink = new LogFileSink(path, { maxBytes: 20, keep: 2 });
    for (const n of ["e", "f", "g"]) {
      sink.writeLine(`${n.repeat(19)}\n`);
      await sink.flush();
    }
  }
  assert.deepEqual(await names(dir), [
    "p.log",
    "p.log.1",
    "p.log.2",
    "p.log.lock",
  ]);
  assert.equal(await Deno.readTextFile(path), `${"g".repeat(19)}\n`);
  assert.equal(await Deno.readTextFile(`${path}.1`), `${"f".repeat(19)}\n`);
  assert.equal(await Deno.readTextFile(`${path}.2`), `${"e".repeat(19)}\n`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LogFileSink.flush() shifts old files only up to the first gap, whatever keep is", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/p.log`;
  await Deno.writeTextFile(path, "now\n");
  await Deno.writeTextFile(`${path}.1`, "one\n");
  // `.2` is missing (removed by hand): `.3` is older and stays put.
  await Deno.writeTextFile(`${path}.3`, "three\n");
  const renames: string[] = [];
  const rename = Deno.rename;
  Deno.rename = (from, to) => {
    renames.push(`${from} ${to}`.replaceAll(`${dir}/`, ""));
    return rename(from, to);
  };
  try {
    await using sink = new LogFileSink(path, { maxBytes: 8, keep: 1000 });
    sink.writeLine("next\n");
    await sink.flush();
  } finally {
    Deno.rename = rename;
  }
  assert.deepEqual(renames, ["p.log.1 p.log.2", "p.log p.log.1"]);
  assert.equal(await Deno.readTextFile(path), "next\n");
  assert.equal(await Deno.readTextFile(`${path}.1`), "now\n");
  assert.equal(await Deno.readTextFile(`${path}.2`), "one\n");
  assert.equal(await Deno.readTextFile(`${path}.3`), "three\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LogFileSink.flush() starts the log afresh when keep is 0", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/p.log`;
  {
    await using sink = new LogFileSink(path, { maxBytes: 10, keep: 0 });
    sink.writeLine("first\n");
    await sink.flush();
    sink.writeLine("second\n");
  }
  assert.deepEqual(await names(dir), ["p.log", "p.log.lock"]);
  assert.equal(await Deno.readTextFile(path), "second\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LogFileSink.writeLine() buffers until a flush when below bufferBytes", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/p.log`;
  await using sink = new LogFileSink(path);
  sink.writeLine("one\n");
  sink.writeLine("two\n");
  await assert.rejects(Deno.stat(path), { name: "NotFound" });
  await sink.flush();
  await sink.flush();
  assert.equal(await Deno.readTextFile(path), "one\ntwo\n");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LogFileSink.writeLine() is flushed on its own when the buffer passes bufferBytes or flushIntervalMs passes", async () => {
  const dir = await Deno.makeTempDir();
  {
    await using sink = new LogFileSink(`${dir}/b.log`, { bufferBytes: 8 });
    sink.writeLine("1234\n");
    sink.writeLine("5678\n");
    await sink.flush();
    assert.equal(await Deno.readTextFile(`${dir}/b.log`), "1234\n5678\n");
  }
  {
    await using sink = new LogFileSink(`${dir}/i.log`, {
      flushIntervalMs: 20,
    });
    sink.writeLine("tick\n");
    let text = "";
    for (let i = 0; i < 100 && text === ""; i++) {
      await new Promise((r) => setTimeout(r, 10));
      text = await Deno.readTextFile(`${dir}/i.log`).catch(() => "");
    }
    assert.equal(text, "tick\n");
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LogFileSink.flush() drops the lines when the log path is not a regular file", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/p.log`);
  {
    await using sink = new LogFileSink(`${dir}/p.log`, { maxBytes: 1 });
    sink.writeLine("lost\n");
  }
  assert.ok((await Deno.stat(`${dir}/p.log`)).isDirectory);
  assert.deepEqual(await names(dir), ["p.log", "p.log.lock"]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LogFileSink.flush() appends without rotating when the lock is held past lockTimeoutMs", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/p.log`;
  await Deno.writeTextFile(path, "old\n");
  const holder = await Deno.open(`${path}.lock`, {
    read: true,
    write: true,
    create: true,
  });
  const exclusive = true;
  await holder.lock(exclusive);
  const start = performance.now();
  {
    await using sink = new LogFileSink(path, {
      maxBytes: 4,
      lockTimeoutMs: 100,
    });
    sink.writeLine("new\n");
  }
  const ms = performance.now() - start;
  assert.ok(ms >= 90 && ms < 5000, `${ms} ms`);
  assert.equal(await Deno.readTextFile(path), "old\nnew\n");
  await holder.unlock();
  holder.close();
  // The timed-out lock() takes the lock once free and drops it at once.
  const probe = await Deno.open(`${path}.lock`, { read: true });
  for (let i = 0; i < 200 && !(await probe.tryLock(exclusive)); i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  probe.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("LogFileSink() throws a RangeError when maxBytes or keep is out of range", () => {
  for (const options of [{ maxBytes: 0 }, { keep: -1 }, { maxBytes: NaN }]) {
    assert.throws(() => new LogFileSink("/tmp/x.log", options), {
      name: "RangeError",
      message: /Invalid log rotation for "\/tmp\/x\.log"/,
    });
  }
});

Deno.test("makeLogDir() creates missing directories 0750 and leaves existing ones when the umask is 0", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o777);
  const old = Deno.umask(0);
  try {
    await makeLogDir(`${dir}/a/b`);
    await makeLogDir(`${dir}/a/b`);
  } finally {
    Deno.umask(old);
  }
  assert.equal(modeOf(await Deno.stat(dir)), 0o777);
  assert.equal(modeOf(await Deno.stat(`${dir}/a`)), 0o750);
  assert.equal(modeOf(await Deno.stat(`${dir}/a/b`)), 0o750);
  await Deno.remove(dir, { recursive: true });
});
