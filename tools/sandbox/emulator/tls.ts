/**
 * Test TLS material: a throw-away CA plus a leaf certificate made with the
 * `openssl` CLI (argument arrays, no shell), in a temp dir. Never committed.
 *
 * @module
 */

/** Files and PEM text of a generated CA and leaf. */
export interface TlsMaterial {
  /** Directory holding the files. */
  dir: string;
  /** CA certificate PEM (what clients trust). */
  caCert: string;
  /** Path of `ca.pem`. */
  caFile: string;
  /** Leaf certificate PEM (what the server presents). */
  cert: string;
  /** Leaf private key PEM. */
  key: string;
}

/** Options of {@linkcode generateTls}. */
export interface GenerateTlsOptions {
  /** Where to write (default: a new temp dir). Existing files are reused. */
  dir?: string | undefined;
  /** IPs for the leaf's SAN besides 127.0.0.1 (e.g. 168.63.129.16). */
  ips?: readonly string[] | undefined;
  /** DNS names besides localhost. */
  dnsNames?: readonly string[] | undefined;
  /**
   * Remove the directory when the program unloads (a test module's
   * material; the directory must be one of its own).
   */
  removeOnUnload?: boolean | undefined;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `Cannot run "openssl ${args[0]}": ${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Generates (or reuses) a P-256 CA and a leaf for `IP:127.0.0.1`,
 * `DNS:localhost` and the extra names given.
 *
 * @param options Directory, extra SAN IPs and DNS names.
 * @returns The PEMs and the CA file path.
 * @throws {Error} When `openssl` fails.
 *
 * @example Usage
 * ```ts ignore
 * const tls = await generateTls({ ips: ["168.63.129.16"] });
 * Deno.serve({ port: 0, cert: tls.cert, key: tls.key }, () => new Response("ok"));
 * ```
 */
export async function generateTls(
  options: GenerateTlsOptions = {},
): Promise<TlsMaterial> {
  const dir = options.dir ?? await Deno.makeTempDir({ prefix: "vnet-tls-" });
  await Deno.mkdir(dir, { recursive: true });
  if (options.removeOnUnload) {
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(dir, { recursive: true });
    });
  }
  const caFile = `${dir}/ca.pem`;
  const existing = await Promise.all(
    ["ca.pem", "leaf.pem", "leaf.key"].map((f) => readIfExists(`${dir}/${f}`)),
  );
  const [oldCa, oldCert, oldKey] = existing;
  if (oldCa !== undefined && oldCert !== undefined && oldKey !== undefined) {
    return { dir, caCert: oldCa, caFile, cert: oldCert, key: oldKey };
  }
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl([
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "30",
    "-subj",
    "/CN=vnet-test-ca",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ], dir);
  await openssl([
    "req",
    ...ec,
    "-keyout",
    "leaf.key",
    "-out",
    "leaf.csr",
    "-subj",
    "/CN=localhost",
  ], dir);
  const san = [
    ...["localhost", ...(options.dnsNames ?? [])].map((d) => `DNS:${d}`),
    ...["127.0.0.1", ...(options.ips ?? [])].map((ip) => `IP:${ip}`),
  ].join(",");
  await Deno.writeTextFile(
    `${dir}/leaf.ext`,
    "basicConstraints=critical,CA:FALSE\n" +
      "keyUsage=critical,digitalSignature,keyEncipherment\n" +
      "extendedKeyUsage=serverAuth\n" +
      `subjectAltName=${san}\n`,
  );
  await openssl([
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    "leaf.pem",
    "-days",
    "30",
    "-extfile",
    "leaf.ext",
  ], dir);
  return {
    dir,
    caCert: await Deno.readTextFile(caFile),
    caFile,
    cert: await Deno.readTextFile(`${dir}/leaf.pem`),
    key: await Deno.readTextFile(`${dir}/leaf.key`),
  };
}
