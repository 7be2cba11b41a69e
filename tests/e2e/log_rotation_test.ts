/**
 * E2E: many processes write one rotated log at once (the plugins' situation:
 * one process per CNI command). Every record lands exactly once, whole, in
 * order per process; no file passes `maxBytes`; at most `keep` old files
 * stay. Needs no root: the processes only write files in a temp dir.
 */
import assert from "node:assert/strict";

const LOGGING = new URL("../../cni/logging.ts", import.meta.url).href;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/** One process: waits for "go" on stdin, then logs ROUNDS flushes of PER. */
const CHILD = `
import { getLogger } from "@logtape/logtape";
import { configureLogging } from ${JSON.stringify(LOGGING)};
const [id, file, maxBytes, keep, rounds, per] = Deno.args;
await using logs = await configureLogging({
  file,
  maxBytes: Number(maxBytes),
  keep: Number(keep),
});
const log = getLogger(["rot"]);
await Deno.stdout.write(new TextEncoder().encode("ready\\n"));
await Deno.stdin.read(new Uint8Array(16));
for (let r = 0; r < Number(rounds); r++) {
  for (let k = 0; k < Number(per); k++) {
    const n = Number(id) * 1000 + r * 100 + k;
    log.info("record {id} pad {pad}", {
      id: \`p\${id}-r\${r}-k\${k}\`,
      pad: "x".repeat(10 + (n * 7919) % 61),
    });
  }
  await logs.flush();
}
`;

/** A complete line of the child's log. */
const LINE =
  /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \+00:00 \[INF\] rot: record "p(\d+)-r(\d+)-k(\d+)" pad "(x*)"$/;

interface Run {
  procs: number;
  rounds: number;
  per: number;
  maxBytes: number;
  keep: number;
}

/** Starts every process, releases them at once, waits for all. */
async function runAll(dir: string, run: Run): Promise<void> {
  const script = `${dir}/child.ts`;
  await Deno.writeTextFile(script, CHILD);
  const children = Array.from(
    { length: run.procs },
    (_, i) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--quiet",
          "--cached-only",
          `--config=${CONFIG}`,
          script,
          String(i),
          `${dir}/rot.log`,
          String(run.maxBytes),
          String(run.keep),
          String(run.rounds),
          String(run.per),
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
        signal: AbortSignal.timeout(60_000),
      }).spawn(),
  );
  const readers = children.map((c) => c.stdout.getReader());
  // Barrier: every process is up and configured before any logs.
  for (const r of readers) {
    const first = await r.read();
    assert.equal(new TextDecoder().decode(first.value), "ready\n");
  }
  await Promise.all(children.map(async (c) => {
    const w = c.stdin.getWriter();
    await w.write(new TextEncoder().encode("go\n"));
    await w.close();
  }));
  for (const [i, c] of children.entries()) {
    while (!(await readers[i]?.read())?.done) { /* drain */ }
    assert.equal((await c.status).code, 0, `process ${i}`);
  }
}

interface Found {
  /** Log file names, newest first, without the lock file. */
  files: string[];
  /** Sizes by file name. */
  sizes: Map<string, number>;
  /** Record ids (`p-r-k`), oldest first. */
  ids: string[];
}

/** Reads `rot.log`, `rot.log.1`, ... and checks every line is whole. */
async function readLogs(dir: string): Promise<Found> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith("rot.log") && e.name !== "rot.log.lock") {
      files.push(e.name);
    }
  }
  const rank = (n: string): number => n === "rot.log" ? 0 : Number(n.slice(8));
  files.sort((a, b) => rank(a) - rank(b));
  files.forEach((name, i) => assert.equal(rank(name), i, files.join(" ")));
  const sizes = new Map<string, number>();
  const ids: string[] = [];
  for (const name of [...files].reverse()) {
    const text = await Deno.readTextFile(`${dir}/${name}`);
    sizes.set(name, new TextEncoder().encode(text).length);
    assert.ok(text.endsWith("\n"), `${name} ends mid-line`);
    for (const line of text.slice(0, -1).split("\n")) {
      const m = LINE.exec(line);
      assert.ok(m !== null, `torn line in ${name}: ${JSON.stringify(line)}`);
      const [p = 0, r = 0, k = 0] = m.slice(1, 4).map(Number);
      const n = p * 1000 + r * 100 + k;
      assert.equal(m[4]?.length, 10 + (n * 7919) % 61, `padding of ${line}`);
      ids.push(`${p}-${r}-${k}`);
    }
  }
  return { files, sizes, ids };
}

Deno.test("configureLogging() rotation loses, splits and reorders no record when 40 processes write at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cnitest-logrot-" });
  try {
    const run = { procs: 40, rounds: 5, per: 10, maxBytes: 4096, keep: 1000 };
    await runAll(dir, run);
    const found = await readLogs(dir);
    // Exactly once each.
    const want: string[] = [];
    for (let p = 0; p < run.procs; p++) {
      for (let r = 0; r < run.rounds; r++) {
        for (let k = 0; k < run.per; k++) want.push(`${p}-${r}-${k}`);
      }
    }
    assert.deepEqual([...found.ids].sort(), want.sort());
    // In order per process, across files from oldest to newest.
    const last = new Map<string, number>();
    for (const id of found.ids) {
      const [p, r, k] = id.split("-").map(Number);
      const seq = (r ?? 0) * 100 + (k ?? 0);
      assert.ok(seq > (last.get(String(p)) ?? -1), `${id} out of order`);
      last.set(String(p), seq);
    }
    // A flush (10 records) is far below maxBytes: no file passes it.
    for (const [name, size] of found.sizes) {
      assert.ok(size <= run.maxBytes, `${name}: ${size} bytes`);
    }
    assert.ok(found.files.length > 10, `only ${found.files.length} files`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("configureLogging() rotation keeps at most keep old files when 20 processes write at once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "cnitest-logrot-" });
  try {
    const run = { procs: 20, rounds: 4, per: 10, maxBytes: 2048, keep: 2 };
    await runAll(dir, run);
    const found = await readLogs(dir);
    assert.deepEqual(found.files, ["rot.log", "rot.log.1", "rot.log.2"]);
    assert.equal(new Set(found.ids).size, found.ids.length, "a duplicate");
    for (const [name, size] of found.sizes) {
      assert.ok(size <= run.maxBytes, `${name}: ${size} bytes`);
    }
    // The newest records survive: the last round of some process is there.
    assert.ok(found.ids.some((id) => id.endsWith(`-${run.rounds - 1}-9`)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
