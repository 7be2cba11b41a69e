/**
 * Test namespaces: the testbed's {@link Netns} (random `cnitest-` names,
 * released with `await using`), created after the privilege check. Kernel
 * state is read back through `ip -j`, the independent read path.
 *
 * @module
 */
import { Netns, randomName } from "../../tools/testbed/mod.ts";
import { requireRoot } from "./privilege.ts";

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
