/**
 * Makes a bundle's default `node:util` import lazy.
 *
 * `@logtape/logtape` resolves its private `#util` import to `util.node.js`
 * under Deno's npm conditions, whose `import util from "node:util"` makes
 * every plugin start load Deno's Node compatibility layer (about 16 ms, plus
 * web streams) although the formatter only calls it when `Deno.inspect` is
 * missing, which on Deno it never is.
 *
 * @module
 */

const DEFAULT_IMPORT = /import\s*([A-Za-z_$][\w$]*)\s*from\s*"node:util"\s*;?/g;

/** An object that forwards to `node:util`, loaded on first use. */
const LAZY = "(()=>{let m;" +
  'const g=()=>m??=globalThis.process.getBuiltinModule("node:util");' +
  "return new Proxy({},{get:(_t,k)=>g()[k],has:(_t,k)=>k in g()," +
  "ownKeys:()=>Reflect.ownKeys(g())," +
  "getOwnPropertyDescriptor:(_t,k)=>{" +
  "const d=Reflect.getOwnPropertyDescriptor(g(),k);" +
  "if(d)d.configurable=true;return d}})})()";

/** What {@link lazyNodeUtil} did. */
export interface LazyNodeUtilResult {
  /** The rewritten bundle text. */
  text: string;
  /** The binding names rewritten (empty when the bundle had none). */
  names: string[];
}

/**
 * Replaces each `import x from "node:util"` of a bundle with a binding that
 * loads `node:util` on the first property access through
 * `process.getBuiltinModule`, so the module is only loaded if used.
 *
 * Behaviour is unchanged: every property read goes to the real module. The
 * declarations go first in the file, where the hoisted imports were bound.
 * Named imports (`import { x } from "node:util"`) are left as they are.
 *
 * @param text The bundle's JavaScript.
 * @returns The rewritten text and the names rewritten.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { lazyNodeUtil } from "./lazy_node_util.ts";
 * const r = lazyNodeUtil('var a=1;import u from"node:util";f(u.inspect);');
 * assert.deepEqual(r.names, ["u"]);
 * assert.ok(!r.text.includes('from"node:util"'));
 * ```
 */
export function lazyNodeUtil(text: string): LazyNodeUtilResult {
  const names: string[] = [];
  const body = text.replace(DEFAULT_IMPORT, (_m, name: string) => {
    names.push(name);
    return "";
  });
  if (names.length === 0) return { text, names };
  const decls = names.map((n) => `const ${n}=${LAZY};`).join("");
  const shebang = body.startsWith("#!") ? body.indexOf("\n") + 1 : 0;
  return {
    text: body.slice(0, shebang) + decls + body.slice(shebang),
    names,
  };
}
