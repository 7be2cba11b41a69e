/**
 * A stand-in plugin entry for build and installer tests: answers VERSION
 * like a CNI plugin, `--version` like the agent (#14), and, for PROBE, reports which accesses its permissions
 * allow (paths from FIXTURE_READ, FIXTURE_WRITE, FIXTURE_RUN, colon-separated).
 * Its VERSION answer comes through a dynamic `import()`, as a thin plugin's
 * fallback does, so the build splits a chunk off and the installer must
 * copy it (#14).
 *
 * @module
 */

function attempt(fn: () => void): string {
  try {
    fn();
    return "ok";
  } catch (err) {
    return err instanceof Error ? err.name : "error";
  }
}

function list(name: string): string[] {
  return (Deno.env.get(name) ?? "").split(":").filter((x) => x !== "");
}

async function main(): Promise<number> {
  if (Deno.args[0] === "--version") {
    Deno.stdout.writeSync(new TextEncoder().encode("fixture-plugin 0.0.0\n"));
    return 0;
  }
  const cmd = Deno.env.get("CNI_COMMAND");
  const out: Record<string, unknown> = { cniVersion: "1.0.0" };
  if (cmd === "VERSION") {
    out.supportedVersions = (await import("./fixture_versions.ts")).VERSIONS;
  } else if (cmd === "PROBE") {
    out.read = list("FIXTURE_READ").map((p) =>
      attempt(() => Deno.readDirSync(p))
    );
    out.write = list("FIXTURE_WRITE").map((p) =>
      attempt(() => Deno.writeTextFileSync(p, "x"))
    );
    out.run = list("FIXTURE_RUN").map((p) =>
      attempt(() => new Deno.Command(p).outputSync())
    );
    out.env = Object.keys(Deno.env.toObject()).sort();
  } else {
    out.code = 4;
    out.msg = `Unknown CNI_COMMAND "${cmd ?? ""}"`;
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(out)));
    return 1;
  }
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(out)));
  return 0;
}

Deno.exit(await main());
