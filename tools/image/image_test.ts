import assert from "node:assert/strict";
import { aptMirrors, mmdebstrapArgs, RUNTIME_PACKAGES } from "./image.ts";

Deno.test("aptMirrors() keeps the release's Debian entries of both formats", () => {
  const text = [
    "Types: deb",
    "URIs: http://m/debian",
    "Suites: bookworm bookworm-updates",
    "Components: main",
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg",
    "",
    "Types: deb-src",
    "URIs: http://m/debian",
    "Suites: bookworm",
    "Components: main",
    "",
    "Types: deb",
    "URIs: http://other/x",
    "Suites: nodistro",
    "Components: main",
    "",
    "Types: deb",
    "Enabled: no",
    "URIs: http://off/debian",
    "Suites: bookworm",
    "Components: main",
    "",
    "deb [arch=amd64] http://s/debian-security bookworm-security main",
    "deb-src http://s/debian bookworm main",
    "deb http://old/debian bullseye main",
  ].join("\n");
  assert.deepEqual(aptMirrors(text, "bookworm"), [
    "deb [arch=amd64] http://s/debian-security bookworm-security main",
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m/debian bookworm main",
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m/debian bookworm-updates main",
  ]);
});

Deno.test("mmdebstrapArgs() adds only the runtime packages to an essential base", () => {
  const args = mmdebstrapArgs(["deb http://m/debian bookworm main"], "/t.tar");
  assert.ok(args.includes(`--include=${RUNTIME_PACKAGES.join(",")}`));
  assert.deepEqual(RUNTIME_PACKAGES, [
    "libnl-3-200",
    "libnl-route-3-200",
    "ebtables",
    "iptables",
  ]);
  assert.ok(args.includes("--variant=essential"));
  assert.deepEqual(args.slice(-3), [
    "bookworm",
    "/t.tar",
    "deb http://m/debian bookworm main",
  ]);
});
