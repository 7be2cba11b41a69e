import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { configureLogging } from "./logging.ts";

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
