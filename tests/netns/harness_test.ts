import { assert } from "../_support/assert.ts";
import { ip, ipJson, TestNetns } from "../_support/netns.ts";

Deno.test("TestNetns holds a veth pair created inside it", async () => {
  await using ns = await TestNetns.create();
  await ip(
    ["link", "add", "cnitest-a", "type", "veth", "peer", "cnitest-b"],
    ns.name,
  );
  const links = await ipJson<{ ifname: string }[]>(["link", "show"], ns.name);
  const names = links.map((l) => l.ifname).sort();
  assert.deepEqual(names, ["cnitest-a", "cnitest-b", "lo"]);
});
