/**
 * The emulator's command line: starts it, prints one JSON line with its
 * URLs on stdout when ready, and runs until SIGINT/SIGTERM.
 *
 * @module
 */
import { parseCli } from "../../_cli.ts";
import { startEmulator } from "./emulator.ts";
import { generateTls } from "./tls.ts";

const USAGE =
  `usage: deno run -A tools/sandbox/emulator/main.ts [--hostname ADDR]...
  [--http-port N] [--https-port N] [--state-file FILE] [--ca-dir DIR] [--san-ip IP]...
Serves the wireserver, IMDS and tokens over HTTP and ARM over HTTPS (when
--ca-dir is given: CA and leaf are generated there, or reused).`;

const SPEC = {
  usage: USAGE,
  options: {
    hostname: { type: "string", multiple: true },
    "http-port": { type: "string", default: "0" },
    "https-port": { type: "string", default: "0" },
    "state-file": { type: "string" },
    "ca-dir": { type: "string" },
    "san-ip": { type: "string", multiple: true },
  },
} as const;

function port(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new RangeError(`Cannot use port "${text}": must be 0..65535`);
  }
  return n;
}

/**
 * Runs the emulator CLI until a signal arrives.
 *
 * @param args Command-line arguments.
 * @returns The exit code (2 for a bad command line).
 */
export async function main(args: readonly string[]): Promise<number> {
  const parsed = parseCli(args, SPEC);
  if ("exitCode" in parsed) return parsed.exitCode;
  const v = parsed.values;
  const hostnames = v.hostname ?? ["127.0.0.1"];
  const caDir = v["ca-dir"];
  const tls = caDir === undefined ? undefined : await generateTls({
    dir: caDir,
    ips: [...hostnames, ...(v["san-ip"] ?? [])].filter((h) =>
      h !== "127.0.0.1" && h !== "localhost"
    ),
  });
  const emu = await startEmulator({
    hostname: hostnames[0],
    extraHostnames: hostnames.slice(1),
    httpPort: port(v["http-port"]),
    httpsPort: port(v["https-port"]),
    tls,
    stateFile: v["state-file"],
  });
  const ready = {
    httpUrl: emu.httpUrl,
    httpsUrl: emu.httpsUrl,
    caFile: tls?.caFile ?? "",
    stateFile: v["state-file"] ?? "",
  };
  await Deno.stdout.write(
    new TextEncoder().encode(JSON.stringify(ready) + "\n"),
  );
  const { promise, resolve } = Promise.withResolvers<void>();
  const stop = () => resolve();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await promise;
  Deno.removeSignalListener("SIGINT", stop);
  Deno.removeSignalListener("SIGTERM", stop);
  await emu.close();
  return 0;
}
