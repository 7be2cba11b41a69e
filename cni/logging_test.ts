import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { configureLogging, startPluginLogging } from "./logging.ts";

const IPAM_MAIN = new URL(
  "../ipam/plugins/azure-vnet-ipam/main.ts",
  import.meta.url,
).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const IPAM_CONF = JSON.stringify({
  cniVersion: "1.0.0",
  name: "n",
  type: "azure-vnet-ipam",
  ipam: {
    type: "azure-vnet-ipam",
    environment: "static",
    subnet: "10.1.0.0/24",
    addresses: ["10.1.0.5"],
  },
});

/** Any control character or line separator. */
const CONTROL = /[\p{Cc}\u2028\u2029]/u;

function modeOf(st: Deno.FileInfo): number {
  return (st.mode ?? 0) & 0o777;
}

/** Runs `azure-vnet-ipam` DEL as a process, killed after `timeoutMs`. */
async function runIpamDel(
  dir: string,
  logDir: string,
): Promise<{ code: number; ms: number }> {
  const start = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--cached-only",
      `--config=${CONFIG}`,
      IPAM_MAIN,
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      CNI_COMMAND: "DEL",
      CNI_CONTAINERID: "x",
      CNI_IFNAME: "eth0",
      CNI_PATH: "/tmp",
      AZURE_VNET_STATE_DIR: dir,
      AZURE_VNET_LOG_DIR: logDir,
    },
    stdin: "piped",
    stdout: "null",
    stderr: "null",
    signal: AbortSignal.timeout(15_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(IPAM_CONF));
  await w.close();
  const { code } = await child.status;
  return { code, ms: performance.now() - start };
}

Deno.test("configureLogging() routes categoryFiles to their own 0640 file", async () => {
  const dir = await Deno.makeTempDir();
  {
    await using _log = await configureLogging({
      file: `${dir}/azure-vnet.log`,
      categoryFiles: { "azure-vnet-ipam": `${dir}/azure-vnet-ipam.log` },
    });
    getLogger(["azure-vnet", "cni"]).info("ADD {id} ok", { id: "c1" });
    getLogger(["azure-vnet-ipam", "engine"]).info("allocated {ip}", {
      ip: "10.0.0.5",
    });
  }
  const main = await Deno.readTextFile(`${dir}/azure-vnet.log`);
  const ipam = await Deno.readTextFile(`${dir}/azure-vnet-ipam.log`);
  assert.match(main, /ADD "c1" ok/);
  assert.doesNotMatch(main, /allocated/);
  assert.match(ipam, /allocated "10\.0\.0\.5"/);
  assert.doesNotMatch(ipam, /ADD/);
  assert.equal(
    ((await Deno.stat(`${dir}/azure-vnet-ipam.log`)).mode ?? 0) & 0o777,
    0o640,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("configureLogging() writes one physical line per record when values hold newlines, ESC or line separators", async () => {
  const dir = await Deno.makeTempDir();
  const netns = "/var/run/netns/x\n2026-01-01 00:00:00.000 +00:00 [ERR] fake";
  {
    await using _log = await configureLogging({ file: `${dir}/p.log` });
    const log = getLogger(["azure-vnet"]);
    log.info("ADD {netns}", { netns });
    log.info(`ADD netns ${netns} \x1b[31mred\x1b[0m \r\t\x7f\u0085 end`);
    log.info("ADD {sep} {err}", {
      sep: "a\u2028b\u2029c",
      err: new Error("first\nsecond"),
    });
    log.info("ADD {list}", { list: Array.from({ length: 30 }, (_, i) => i) });
  }
  const text = await Deno.readTextFile(`${dir}/p.log`);
  assert.ok(text.endsWith("\n"));
  const lines = text.slice(0, -1).split("\n");
  assert.equal(lines.length, 4, text);
  for (const line of lines) {
    assert.match(line, /^\d{4}-\d\d-\d\d \S+ \+00:00 \[INF\] azure-vnet: ADD /);
    assert.doesNotMatch(line, CONTROL, JSON.stringify(line));
  }
  assert.match(
    lines[1] ?? "",
    /x\\n2026-01-01 .* \\u001b\[31mred\\u001b\[0m \\r\\t\\u007f\\u0085 end$/,
  );
  assert.match(lines[2] ?? "", /"a\\u2028b\\u2029c" Error: first\\nsecond\\n/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("configureLogging() writes URL credentials and query values redacted", async () => {
  const dir = await Deno.makeTempDir();
  {
    await using _log = await configureLogging({ file: `${dir}/p.log` });
    const log = getLogger(["azure-vnet-ipam"]);
    log.warn("Refresh from {source} failed", {
      source: "http://u:p@h/x?sig=s",
    });
    log.warn(`Retrying http://user:password@10.0.0.1/m?comp=a&sig=s3cr3t`);
  }
  const text = await Deno.readTextFile(`${dir}/p.log`);
  assert.match(text, /"http:\/\/REDACTED@h\/x\?sig=REDACTED"/);
  assert.match(
    text,
    /http:\/\/REDACTED@10\.0\.0\.1\/m\?comp=REDACTED&sig=REDACTED/,
  );
  for (const secret of ["u:p", "sig=s", "password", "s3cr3t"]) {
    assert.ok(!text.includes(secret), `${secret} in ${text}`);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("startPluginLogging() creates a missing log directory 0750 and the log 0640 when the umask is 0", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.chmod(dir, 0o711);
  const old = Deno.umask(0);
  try {
    const env = { CNI_COMMAND: "ADD", AZURE_VNET_LOG_DIR: `${dir}/a/b/` };
    {
      await using _log = await startPluginLogging("p.log", { env, args: [] });
      getLogger(["p"]).info("ADD ok");
    }
  } finally {
    Deno.umask(old);
  }
  assert.equal(modeOf(await Deno.stat(dir)), 0o711, "existing dir untouched");
  assert.equal(modeOf(await Deno.stat(`${dir}/a`)), 0o750);
  assert.equal(modeOf(await Deno.stat(`${dir}/a/b`)), 0o750);
  assert.equal(modeOf(await Deno.stat(`${dir}/a/b/p.log`)), 0o640);
  assert.equal(modeOf(await Deno.stat(`${dir}/a/b/p.log.lock`)), 0o600);
  assert.match(
    await Deno.readTextFile(`${dir}/a/b/p.log`),
    /\[INF\] p: ADD ok\n$/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("startPluginLogging() opens no file when the command is VERSION", async () => {
  const dir = await Deno.makeTempDir();
  const env = { CNI_COMMAND: "VERSION", AZURE_VNET_LOG_DIR: `${dir}/logs` };
  {
    await using logs = await startPluginLogging("p.log", { env, args: [] });
    await logs.setLevel("debug");
    getLogger(["p"]).info("VERSION");
  }
  await assert.rejects(Deno.stat(`${dir}/logs`), { name: "NotFound" });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("startPluginLogging() creates the missing log directory when the azure-vnet-ipam binary runs", async () => {
  const dir = await Deno.makeTempDir();
  const r = await runIpamDel(dir, `${dir}/new/logs`);
  assert.equal(r.code, 0);
  const text = await Deno.readTextFile(`${dir}/new/logs/azure-vnet-ipam.log`);
  assert.match(text, /\[INF\] azure-vnet-ipam: "DEL" "x" "eth0": ok in/);
  assert.equal(modeOf(await Deno.stat(`${dir}/new/logs`)), 0o750);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("startPluginLogging() lets the azure-vnet-ipam binary finish when its log path is a FIFO", async () => {
  const dir = await Deno.makeTempDir();
  const fifo = `${dir}/azure-vnet-ipam.log`;
  const mk = await new Deno.Command("mkfifo", { args: [fifo] }).output();
  assert.ok(mk.success);
  const r = await runIpamDel(dir, dir);
  assert.equal(r.code, 0);
  assert.ok(r.ms < 10_000, `took ${r.ms} ms`);
  assert.ok((await Deno.lstat(fifo)).isFifo);
  await Deno.remove(dir, { recursive: true });
});
