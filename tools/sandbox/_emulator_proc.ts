/**
 * The emulator process of a sandbox, started inside the fabric netns:
 * wireserver and IMDS on the documented addresses (port 80), ARM over HTTPS
 * on 168.63.129.16:443 with a sandbox CA, the world in the state file.
 * Runs until SIGTERM.
 *
 * Usage: `deno run -A _emulator_proc.ts STATE_FILE TLS_DIR`
 *
 * @module
 */
import { startEmulator } from "./emulator/emulator.ts";
import { generateTls } from "./emulator/tls.ts";

/**
 * Starts the emulator and waits for SIGTERM.
 *
 * @param args The state file and the TLS directory.
 * @returns The exit code.
 */
export async function main(args: string[]): Promise<number> {
  const [stateFile, tlsDir] = args;
  if (stateFile === undefined || tlsDir === undefined) return 2;
  const tls = await generateTls({
    dir: tlsDir,
    ips: ["168.63.129.16", "169.254.169.254"],
  });
  const emu = await startEmulator({
    hostname: "168.63.129.16",
    extraHostnames: ["169.254.169.254"],
    httpPort: 80,
    httpsPort: 443,
    tls: { cert: tls.cert, key: tls.key },
    stateFile,
  });
  const { promise, resolve } = Promise.withResolvers<void>();
  Deno.addSignalListener("SIGTERM", resolve);
  Deno.addSignalListener("SIGINT", resolve);
  await promise;
  await emu.close();
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
