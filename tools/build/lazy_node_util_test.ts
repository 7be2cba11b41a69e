import assert from "node:assert/strict";
import util from "node:util";
import { lazyNodeUtil } from "./lazy_node_util.ts";

async function evalModule(text: string): Promise<Record<string, unknown>> {
  const url = `data:text/javascript;base64,${
    btoa(String.fromCharCode(...new TextEncoder().encode(text)))
  }`;
  return await import(url);
}

Deno.test("lazyNodeUtil() rewrites default node:util imports", async (t) => {
  await t.step("minified and spaced forms, declared first", () => {
    const r = lazyNodeUtil(
      'var a=1;import gl from"node:util";var b=2;\nimport  $u  from "node:util";\n',
    );
    assert.deepEqual(r.names, ["gl", "$u"]);
    assert.ok(!r.text.includes('node:util";'), r.text);
    assert.match(r.text, /^const gl=.*const \$u=.*var a=1;var b=2;/s);
  });
  await t.step("a shebang stays on the first line", () => {
    const r = lazyNodeUtil('#!/usr/bin/env deno\nimport u from"node:util";');
    assert.match(r.text, /^#!\/usr\/bin\/env deno\nconst u=/);
  });
  await t.step("text without the import is returned unchanged", () => {
    const src = 'import{inspect as i}from"node:util";i(1);';
    assert.deepEqual(lazyNodeUtil(src), { text: src, names: [] });
  });
});

Deno.test("lazyNodeUtil() binding behaves like node:util", async () => {
  const r = lazyNodeUtil(
    'import u from"node:util";export const inspect=u.inspect;' +
      'export const has="parseArgs" in u;export const keys=Object.keys(u);' +
      'export const out=u.format("%s=%d","a",1);',
  );
  const m = await evalModule(r.text);
  assert.equal(m.inspect, util.inspect);
  assert.ok(m.has);
  assert.ok((m.keys as string[]).includes("inspect"));
  assert.equal(m.out, "a=1");
});
