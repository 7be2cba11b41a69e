import assert from "node:assert/strict";
import plugin from "./plugin.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

function lint(rel: string, source: string): string[] {
  return Deno.lint.runPlugin(plugin, `${ROOT}${rel}`, source).map((d) =>
    `${d.id}: ${d.message}`
  );
}

function ids(rel: string, source: string): string[] {
  return Deno.lint.runPlugin(plugin, `${ROOT}${rel}`, source).map((d) => d.id);
}

Deno.test("import-direction rule follows the docs/STYLE.md member table", async (t) => {
  const cases: [string, string, boolean][] = [
    // [importing file, specifier, allowed]
    ["netlink/link.ts", "./handle.ts", true],
    ["netlink/link.ts", "node:util", true],
    ["netlink/link.ts", "zod/mini", true],
    ["netlink/link.ts", "@vnet/azure", false],
    ["netlink/link.ts", "../azure/mod.ts", false],
    ["netlink/link.ts", "@vnet/cni", false],
    ["azure/client.ts", "@vnet/netlink", false],
    ["azure/client.ts", "./retry.ts", true],
    ["cni/skel.ts", "./errors.ts", true],
    ["cni/skel.ts", "@vnet/ipam", false],
    ["cni/skel.ts", "@vnet/netlink", false],
    ["cni/skel.ts", "./plugins/azure-vnet/config.ts", false],
    ["ipam/engine.ts", "@vnet/cni", true],
    ["ipam/engine.ts", "@vnet/azure", true],
    ["ipam/engine.ts", "@vnet/netlink", false],
    ["ipam/engine.ts", "../cni/errors.ts", false],
    ["ipam/engine.ts", "../cni/mod.ts", true],
    ["ipam/plugins/azure-vnet-ipam/main.ts", "./mod.ts", true],
    ["ipam/plugins/azure-vnet-ipam/main.ts", "../../mod.ts", true],
    ["ipam/plugins/azure-vnet-ipam/main.ts", "@vnet/ipam", true],
    ["ipam/plugins/azure-vnet-ipam/main.ts", "../../engine.ts", false],
    ["ipam/plugins/azure-vnet-ipam/main.ts", "@vnet/netlink", false],
    ["ipam/engine.ts", "./plugins/azure-vnet-ipam/mod.ts", false],
    ["ipam/engine.ts", "@vnet/azure-vnet-ipam", false],
    ["cni/skel.ts", "@vnet/azure-vnet", false],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "../../errors.ts", false],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "../../mod.ts", true],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "@vnet/cni", true],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "./ebtables.ts", true],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "@vnet/netlink", true],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "@vnet/azure", true],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "@vnet/ipam", true],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "../../../ipam/engine.ts", false],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "@vnet/ipam/engine", false],
    ["cni/plugins/azure-vnet/azure_vnet.ts", "@vnet/tools", false],
    ["tools/nic/main.ts", "@vnet/azure", true],
    ["tools/state/cli.ts", "@vnet/azure-vnet", true],
    ["tools/state/cli.ts", "../../cni/plugins/azure-vnet/mod.ts", true],
    ["tools/state/cli.ts", "../../cni/plugins/azure-vnet/state.ts", false],
    ["tools/nic/main.ts", "@vnet/netlink", true],
    ["tools/nic/main.ts", "../_cli.ts", true],
    ["tools/nic/main.ts", "../../netlink/link.ts", false],
    ["tools/nic/main.ts", "@vnet/nope", false],
    ["tools/nic/main.ts", "../../tests/_support/netns.ts", false],
    ["cni/skel.ts", "../tests/_support/assert.ts", false],
    ["cni/skel_test.ts", "../tests/_support/assert.ts", true],
    ["netlink/link_test.ts", "@vnet/cni", true],
    ["tests/netns/link_test.ts", "../_support/netns.ts", true],
    ["tests/_support/netns.ts", "./privilege.ts", true],
    ["tests/e2e/x_test.ts", "@vnet/netlink", true],
    // @vnet/address (netlink/address) is a leaf every library may import.
    ["netlink/address/mac.ts", "./ip.ts", true],
    ["netlink/address/mac.ts", "@vnet/netlink", false],
    ["netlink/address/mac.ts", "../mod.ts", false],
    ["netlink/address/mac.ts", "../link.ts", false],
    ["netlink/address/mac.ts", "@vnet/cni", false],
    ["netlink/address/mac.ts", "@vnet/azure", false],
    ["netlink/link.ts", "@vnet/address", true],
    ["netlink/link.ts", "./address/mod.ts", true],
    ["netlink/link.ts", "./address/mac.ts", false],
    ["azure/imds.ts", "@vnet/address", true],
    ["azure/imds.ts", "../netlink/address/mod.ts", true],
    ["azure/imds.ts", "../netlink/mod.ts", false],
    ["cni/args.ts", "@vnet/address", true],
    ["cni/args.ts", "../netlink/address/mod.ts", true],
    ["cni/args.ts", "../netlink/address/ip.ts", false],
    ["ipam/pool.ts", "@vnet/address", true],
    ["ipam/pool.ts", "@vnet/address/mac", false],
    ["ipam/plugins/azure-vnet-ipam/main.ts", "@vnet/address", false],
    ["cni/plugins/azure-vnet/endpoint.ts", "@vnet/address", true],
    ["tools/state/rebuild.ts", "@vnet/address", true],
    ["tools/state/rebuild.ts", "../../netlink/address/ip.ts", false],
  ];
  for (const [file, spec, allowed] of cases) {
    await t.step(`${file} -> ${spec}: ${allowed ? "ok" : "flagged"}`, () => {
      const forms = [
        `import { x } from "${spec}";`,
        `export * from "${spec}";`,
        `export { y } from "${spec}";`,
        `const m = await import("${spec}");`,
        `import type { T } from "${spec}";`,
      ];
      for (const src of forms) {
        const got = ids(file, src).filter((id) =>
          id === "vnet/import-direction"
        );
        assert.equal(got.length, allowed ? 0 : 1, `${src}: ${got}`);
      }
    });
  }
});

Deno.test("import-direction rule names the reason in its message", () => {
  assert.match(
    lint("ipam/engine.ts", `import { e } from "../cni/errors.ts";`)[0] ?? "",
    /only through its mod\.ts \("@vnet\/cni"\)/,
  );
  assert.match(
    lint("netlink/link.ts", `import "@vnet/azure";`)[0] ?? "",
    /\(@vnet\/netlink\) must not import @vnet\/azure/,
  );
  assert.match(
    lint("tools/x.ts", `import "../tests/_support/assert.ts";`)[0] ?? "",
    /Only test files import "tests\/"/,
  );
});

Deno.test("import-direction rule ignores files outside the repository", () => {
  assert.deepEqual(
    Deno.lint.runPlugin(
      plugin,
      "/elsewhere/netlink/a.ts",
      `import "@vnet/azure";`,
    ),
    [],
  );
});

Deno.test("prefer-private-field rule flags the private keyword but not #fields or constructors", async (t) => {
  const cases: [string, number][] = [
    ["class A { private x = 1; }", 1],
    ["class A { private get y() { return 1; } }", 1],
    ["class A { private m(): void {} }", 1],
    ["class A { constructor(private readonly z: number) {} }", 1],
    ["abstract class A { private abstract q(): void; }", 1],
    ["class A { #x = 1; #m(): void {} protected p = 2; public r = 3; }", 0],
    [
      "class A { private constructor() {} static make(): A { return new A(); } }",
      0,
    ],
  ];
  for (const [src, n] of cases) {
    await t.step(src, () => {
      const got = ids("cni/a.ts", src).filter((id) =>
        id === "vnet/prefer-private-field"
      );
      assert.equal(got.length, n);
    });
  }
});

Deno.test("no-top-level-arrow-function rule flags module-scope arrows only", async (t) => {
  const cases: [string, number][] = [
    ["const f = () => 1;", 1],
    ["export const f = (a: number): number => a;", 1],
    ["const f = (async () => 1) as unknown;", 1],
    ["export default () => 1;", 1],
    ["let a = 1, g = () => a;", 1],
    ["function f(): number { const g = () => 1; return g(); }", 0],
    ["const xs = [1].map((x) => x + 1);", 0],
    ["const o = { f: () => 1 };", 0],
    ["export function f(): void {}", 0],
  ];
  for (const [src, n] of cases) {
    await t.step(src, () => {
      const got = ids("cni/a.ts", src).filter((id) =>
        id === "vnet/no-top-level-arrow-function"
      );
      assert.equal(got.length, n);
    });
  }
});

Deno.test("max-positional-params rule allows 2 positional plus an options object", async (t) => {
  const cases: [string, number][] = [
    ["export function f(a: number, b: number): void {}", 0],
    ["export function f(a: number, b: number, c: number): void {}", 1],
    [
      "export function f(a: number, b: number, { c }: { c: number }): void {}",
      0,
    ],
    [
      "export function f(a: number, b: number, opts: { c?: number } = {}): void {}",
      0,
    ],
    ["export function f(a: number, b: number, opts: FooOptions): void {}", 0],
    [
      "export function f(a: number, b: number, o: FooOptions, d: number): void {}",
      1,
    ],
    ["export function f(a: number, b: number, ...rest: number[]): void {}", 1],
    ["export function f(a: string, b: string, c: boolean): void {}", 1],
    ["export function f(this: X, a: number, b: number): void {}", 0],
    ["function f(a: number, b: number, c: number): void {}", 0],
    ["function f(a: number, b: number, c: number): void {}\nexport { f };", 1],
    [
      "function f(a: number, b: number, c: number): void {}\nexport default f;",
      1,
    ],
    ["export default function (a: number, b: number, c: number): void {}", 1],
    [
      "export const f = function (a: number, b: number, c: number): void {};",
      1,
    ],
    ["export declare function f(a: number, b: number, c: number): void;", 1],
    ["export class A { m(a: number, b: number, c: number): void {} }", 0],
  ];
  for (const [src, n] of cases) {
    await t.step(src, () => {
      const got = ids("cni/a.ts", src).filter((id) =>
        id === "vnet/max-positional-params"
      );
      assert.equal(got.length, n);
    });
  }
});

Deno.test("max-positional-params rule exempts test-tier helpers", () => {
  const src =
    "export function assertX(a: number, b: number, c: RegExp): void {}";
  assert.deepEqual(ids("tests/_support/assert.ts", src), []);
  assert.deepEqual(ids("cni/a_test.ts", src), []);
  assert.deepEqual(ids("cni/a.ts", src), ["vnet/max-positional-params"]);
});
