import { assert } from "../_support/assert.ts";
import { TestNetns } from "../_support/netns.ts";
import { requireRoot } from "../_support/privilege.ts";
import { convertResult, delegateAdd, delegateCommand } from "@vnet/cni";

const HOST_LOCAL_DIR = "/usr/lib/cni";

Deno.test("delegateAdd() drives Debian's host-local through ADD and DEL", async (t) => {
  requireRoot();
  await using ns = await TestNetns.create();
  const dataDir = await Deno.makeTempDir({ prefix: "cnitest-hostlocal-" });
  try {
    for (const version of ["0.3.1", "0.4.0", "1.0.0"]) {
      await t.step(version, async () => {
        const conf = {
          cniVersion: version,
          name: "cnitest-net",
          type: "cnitest-bridge",
          ipam: {
            type: "host-local",
            dataDir,
            ranges: [[{ subnet: "10.99.0.0/24", gateway: "10.99.0.1" }]],
            routes: [{ dst: "0.0.0.0/0" }],
          },
        };
        const env = {
          CNI_CONTAINERID: `cnitest${version.replaceAll(".", "")}`,
          CNI_NETNS: ns.path,
          CNI_IFNAME: "eth0",
          CNI_PATH: HOST_LOCAL_DIR,
        };
        const stdin = new TextEncoder().encode(JSON.stringify(conf));
        const result = await delegateAdd("host-local", { env, stdin });
        assert.equal(result.cniVersion, version);
        assert.equal(result.ips?.length, 1);
        assert.match(result.ips?.[0]?.address ?? "", /^10\.99\.0\.\d+\/24$/);
        assert.equal(result.ips?.[0]?.gateway, "10.99.0.1");
        assert.deepEqual(result.routes, [{ dst: "0.0.0.0/0" }]);
        const addr = (result.ips?.[0]?.address ?? "").split("/")[0] ?? "";
        const holder =
          (await Deno.readTextFile(`${dataDir}/cnitest-net/${addr}`)).split(
            /\s/,
          )[0];
        assert.equal(holder, env.CNI_CONTAINERID);
        // Converted to 0.2.0 and back for our own output.
        const legacy = convertResult(result, "0.2.0");
        assert.deepEqual(legacy.ip4, {
          ip: result.ips?.[0]?.address,
          gateway: "10.99.0.1",
          routes: [{ dst: "0.0.0.0/0" }],
        });
        await delegateCommand("host-local", "DEL", { env, stdin });
        await assert.rejects(
          Deno.stat(`${dataDir}/cnitest-net/${addr}`),
          Deno.errors.NotFound,
        );
        // A second DEL succeeds too.
        await delegateCommand("host-local", "DEL", { env, stdin });
      });
    }
    await t.step(
      "host-local's own error comes back with its code",
      async () => {
        const stdin = new TextEncoder().encode(JSON.stringify({
          cniVersion: "1.0.0",
          name: "cnitest-net",
          type: "x",
          ipam: { type: "host-local", dataDir },
        }));
        await assert.rejects(
          delegateAdd("host-local", {
            env: {
              CNI_CONTAINERID: "cnitestbad",
              CNI_NETNS: ns.path,
              CNI_IFNAME: "eth0",
              CNI_PATH: HOST_LOCAL_DIR,
            },
            stdin,
            stderr: () => {},
          }),
          (err: unknown) => {
            assert.ok(err instanceof Error);
            assert.equal(err.name, "CniError");
            assert.notEqual((err as Error & { code: number }).code, 109);
            return true;
          },
        );
      },
    );
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
