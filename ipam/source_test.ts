import assert from "node:assert/strict";
import type { NetConf } from "@vnet/cni";
import { parseIpamConfig } from "./config.ts";
import { describeSource } from "./source.ts";

function conf(ipam: Record<string, unknown>): NetConf {
  return {
    cniVersion: "1.0.0",
    name: "azure",
    type: "azure-vnet",
    ipam: { type: "azure-vnet-ipam", ...ipam },
  };
}

Deno.test("describeSource() redacts URL credentials and query values", async (t) => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      "azure",
      { queryUrl: "http://user:pw@10.0.0.1/machine/plugins?sig=xyz" },
      "http://REDACTED@10.0.0.1/machine/plugins?sig=REDACTED",
    ],
    [
      "imds",
      { environment: "imds", imdsUrl: "https://user:pw@10.0.0.2/?sig=xyz" },
      "https://REDACTED@10.0.0.2/?sig=REDACTED",
    ],
    [
      "default wireserver URL keeps its path",
      {},
      "http://168.63.129.16/machine/plugins?comp=REDACTED&type=REDACTED",
    ],
    [
      "imds default",
      { environment: "imds" },
      "http://169.254.169.254",
    ],
    [
      "static",
      { environment: "static", subnet: "10.1.0.0/24", addresses: [] },
      "static config",
    ],
  ];
  for (const [name, ipam, want] of cases) {
    await t.step(name, () => {
      const text = describeSource(parseIpamConfig(conf(ipam)));
      assert.equal(text, want);
      assert.ok(!text.includes("pw") && !text.includes("xyz"), text);
    });
  }
});
