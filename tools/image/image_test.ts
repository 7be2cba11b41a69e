import assert from "node:assert/strict";
import {
  aptMirrors,
  archiveIndexes,
  baseTag,
  mmdebstrapArgs,
  parseAptSource,
  releaseIndexes,
  RUNTIME_PACKAGES,
} from "./image.ts";

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

/** An InRelease as Debian's archive serves it (clearsigned, shortened). */
const IN_RELEASE = `-----BEGIN PGP SIGNED MESSAGE-----
Hash: SHA512

Origin: Debian
Suite: stable-updates
Codename: bookworm-updates
Date: Sat, 05 Dec 2026 02:11:04 UTC
Architectures: all amd64 arm64
Components: main contrib
MD5Sum:
 d41d8cd98f00b204e9800998ecf8427e    32757 main/binary-amd64/Packages
SHA256:
 80a1f6ee524222c49f230fc5700d00f946d0a47eb5258180106dd03df126e16a    32757 main/binary-amd64/Packages
 87e7e94047fb7fb6f4ceecc7022d4bee55b66031cc2a7666d3196f3e0aabb846     6924 main/binary-amd64/Packages.xz
 1111111111111111111111111111111111111111111111111111111111111111      100 main/binary-arm64/Packages
 2222222222222222222222222222222222222222222222222222222222222222        0 contrib/binary-amd64/Packages
-----BEGIN PGP SIGNATURE-----

iQIzBAEBCgAdFiEE
-----END PGP SIGNATURE-----
`;

Deno.test("releaseIndexes() takes the SHA-256 of each component's Packages index", async (t) => {
  await t.step("the uncompressed index's, from the SHA256 section", () => {
    assert.deepEqual(
      releaseIndexes(IN_RELEASE, {
        components: ["main", "contrib"],
        arch: "amd64",
      }),
      [
        "main/binary-amd64/Packages 80a1f6ee524222c49f230fc5700d00f946d0a47eb5258180106dd03df126e16a",
        "contrib/binary-amd64/Packages 2222222222222222222222222222222222222222222222222222222222222222",
      ],
    );
  });
  await t.step("a component it does not list", () => {
    assert.throws(
      () =>
        releaseIndexes(IN_RELEASE, { components: ["non-free"], arch: "amd64" }),
      { name: "SyntaxError", message: /"non-free\/binary-amd64\/Packages"/ },
    );
  });
});

Deno.test("parseAptSource() takes a mirror line apart", () => {
  assert.deepEqual(
    parseAptSource(
      "deb [signed-by=/usr/share/keyrings/k.gpg] http://deb.debian.org/debian/ bookworm-updates main contrib",
    ),
    {
      uri: "http://deb.debian.org/debian",
      suite: "bookworm-updates",
      components: ["main", "contrib"],
    },
  );
  assert.throws(() => parseAptSource("deb-src http://m/d bookworm main"), {
    name: "SyntaxError",
    message: /Cannot read apt source/,
  });
});

Deno.test("archiveIndexes() reads each suite's InRelease, else its Release, from the archive", async (t) => {
  const asked: string[] = [];
  const archive = (files: Record<string, string>): typeof fetch => (input) => {
    const url = String(input);
    asked.push(url);
    const text = files[url];
    return Promise.resolve(
      text === undefined
        ? new Response("not found", { status: 404 })
        : new Response(text),
    );
  };
  await t.step("InRelease, or Release where there is none", async () => {
    const lines = await archiveIndexes([
      "deb http://m/debian bookworm-updates main",
      "deb http://s/debian-security bookworm-security main",
    ], {
      arch: "amd64",
      fetch: archive({
        "http://m/debian/dists/bookworm-updates/InRelease": IN_RELEASE,
        "http://s/debian-security/dists/bookworm-security/Release": IN_RELEASE
          .replace("80a1", "ffff"),
      }),
    });
    assert.deepEqual(lines.map((l) => l.split(" ").slice(0, 2).join(" ")), [
      "http://m/debian bookworm-updates",
      "http://s/debian-security bookworm-security",
    ]);
    assert.match(lines[0] ?? "", / 80a1f6ee/);
    assert.match(lines[1] ?? "", / ffff/);
    assert.deepEqual(asked, [
      "http://m/debian/dists/bookworm-updates/InRelease",
      "http://s/debian-security/dists/bookworm-security/InRelease",
      "http://s/debian-security/dists/bookworm-security/Release",
    ]);
  });
  await t.step("neither: an error naming the suite", async () => {
    await assert.rejects(
      archiveIndexes(["deb http://m/debian bookworm main"], {
        arch: "amd64",
        fetch: archive({}),
      }),
      {
        name: "Error",
        message: /Release file of "bookworm" at "http:\/\/m\/debian"/,
      },
    );
  });
});

Deno.test("baseTag() keeps the command's hash and changes with any package index", async () => {
  const command = mmdebstrapArgs(["deb http://m/debian bookworm main"], "");
  const before = await baseTag(command, [
    "http://m/debian bookworm main/binary-amd64/Packages 80a1",
  ]);
  const after = await baseTag(command, [
    "http://m/debian bookworm main/binary-amd64/Packages 80a2",
  ]);
  assert.match(before, /^bookworm-[0-9a-f]{12}-[0-9a-f]{12}$/);
  assert.notEqual(before, after);
  assert.equal(before.split("-")[1], after.split("-")[1]);
  assert.equal(
    await baseTag(command, [
      "http://m/debian bookworm main/binary-amd64/Packages 80a1",
    ]),
    before,
  );
});
