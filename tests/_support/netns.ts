/**
 * Test namespaces: the testbed's {@link Netns} (random `cnitest-` names,
 * released with `await using`), created after the privilege check. Kernel
 * state is read back through `ip -j`, the independent read path.
 *
 * @module
 */
import { Netns, randomName } from "../../tools/testbed/mod.ts";
import { requireRoot } from "./privilege.ts";

import { run } from "../../tools/testbed/mod.ts";

export { ip, ipJson, run } from "../../tools/testbed/mod.ts";

/** A random test prefix such as `cnitest-k3j9a`. */
export function testPrefix(): string {
  return randomName("cnitest");
}

/** A test namespace that deletes itself. */
export type TestNetns = Netns;

/** Creates test namespaces. */
export const TestNetns = {
  /** Creates a namespace with loopback up; fails first when not root. */
  async create(name: string = testPrefix()): Promise<TestNetns> {
    requireRoot();
    return await Netns.create(name);
  },
};

/**
 * The rules of `ns`'s ebtables nat table as `ebtables -L` lists them (one
 * chain, or all), headers left out.
 */
export async function natRules(ns: string, chain?: string): Promise<string[]> {
  const out = await run("ip", [
    "netns",
    "exec",
    ns,
    "ebtables",
    "-t",
    "nat",
    "-L",
    ...(chain === undefined ? [] : [chain]),
  ]);
  return out.split("\n").map((l) => l.trim()).filter((l) => l.startsWith("-"));
}
