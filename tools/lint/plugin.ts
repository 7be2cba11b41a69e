/**
 * The project's own lint rules (STYLE.md sections 1, 3 and 10), loaded by
 * `deno lint` through `"plugins"` in the root `deno.json`.
 *
 * Rules (ids are `vnet/<rule>`):
 *
 * - `import-direction`: the member import graph of STYLE.md section 1.
 *   `netlink/` and `azure/` are leaves; `cni/` outside `cni/plugins/` imports
 *   nothing internal; `ipam/` may import `cni/` and `azure/`; `cni/plugins/*`
 *   may import `cni/`, `netlink/`, `azure/` and `ipam/`; `tools/` may import
 *   any member. Another member is reached only through its `mod.ts`
 *   (`"@vnet/x"` or a relative path to `x/mod.ts`). Only test files
 *   (`*_test.ts`, anything under `tests/`) import `tests/_support/`, and test
 *   files may import anything.
 * - `prefer-private-field`: no TypeScript `private` modifier; use `#field`.
 *   Constructors are exempt (there is no `#constructor`).
 * - `no-top-level-arrow-function`: `const f = () => ...` at module scope.
 * - `max-positional-params`: an exported function takes at most 2 positional
 *   parameters plus a trailing options object (a destructured object, an
 *   object literal type, an `{}` default, or a type named `*Options`,
 *   `*Opts`, `*Init`, `*Config`, `*Settings`, `*Params`, `*Props`, `*Deps`).
 *   Test files are exempt: assertion helpers keep node:assert's
 *   `(actual, expected, message)` shape.
 *
 * @example Usage
 * ```ts ignore
 * import plugin from "./plugin.ts";
 * const found = Deno.lint.runPlugin(plugin, "/repo/netlink/x.ts", "");
 * ```
 *
 * @module
 */

/** Members of the workspace, by folder. */
const MEMBERS: ReadonlySet<string> = new Set([
  "cni",
  "ipam",
  "netlink",
  "azure",
  "tools",
]);

/** The zone a file belongs to, for the import-direction table. */
type Zone = "netlink" | "azure" | "cni" | "cni-plugins" | "ipam" | "tools";

/** Which members each zone may import. */
const ALLOWED: Readonly<Record<Zone, ReadonlySet<string>>> = {
  netlink: new Set(["netlink"]),
  azure: new Set(["azure"]),
  cni: new Set(["cni"]),
  "cni-plugins": new Set(["cni", "netlink", "azure", "ipam"]),
  ipam: new Set(["ipam", "cni", "azure"]),
  tools: new Set(["tools", "cni", "ipam", "netlink", "azure"]),
};

/** The repository root, from this file's location (tools/lint/plugin.ts). */
const REPO_ROOT: string = decodeURIComponent(
  new URL("../../", import.meta.url).pathname,
);

/** Type names accepted as the trailing options object. */
const OPTIONS_TYPE =
  /(Options|Opts|Init|Config|Settings|Params|Props|Deps)$|^(Partial|Readonly|Pick|Omit|Record)$/;

/** Normalizes a POSIX path (resolves `.` and `..`). */
function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") out.pop();
    else out.push(part);
  }
  return "/" + out.join("/");
}

/** Repository-relative path of an absolute file name, or undefined. */
function repoPath(filename: string): string | undefined {
  const abs = normalize(filename.replaceAll("\\", "/"));
  const root = normalize(REPO_ROOT) + "/";
  return abs.startsWith(root) ? abs.slice(root.length) : undefined;
}

/** True for test files: `*_test.ts(x)` anywhere, or anything in `tests/`. */
function isTestFile(rel: string): boolean {
  return rel.startsWith("tests/") || /_test\.[cm]?[jt]sx?$/.test(rel);
}

/** The zone of a repository-relative path, or undefined outside members. */
function zoneOf(rel: string): Zone | undefined {
  const top = rel.split("/")[0] ?? "";
  if (!MEMBERS.has(top)) return undefined;
  if (rel.startsWith("cni/plugins/")) return "cni-plugins";
  return top as Zone;
}

/** Where an import specifier points, inside the repository. */
interface Target {
  /** Member folder, or "tests". */
  top: string;
  /** True when the target is that member's public door. */
  isModTs: boolean;
  /** Repository-relative path when known (relative imports). */
  rel: string | undefined;
}

/**
 * Subpath exports that are public doors besides `mod.ts`, as declared in the
 * members' deno.json `exports` (keep in sync): a plugin folder's `mod.ts`.
 */
const PUBLIC_SUBPATHS: Readonly<Record<string, readonly string[]>> = {
  cni: ["/azure-vnet"],
};

/** Resolves a specifier against the importing file; undefined = external. */
function resolveTarget(spec: string, fromRel: string): Target | undefined {
  const pkg = /^@vnet\/([^/]+)(\/.*)?$/.exec(spec);
  if (pkg) {
    const name = pkg[1] ?? "";
    const sub = pkg[2];
    return {
      top: name,
      isModTs: sub === undefined ||
        (PUBLIC_SUBPATHS[name] ?? []).includes(sub),
      rel: undefined,
    };
  }
  if (!spec.startsWith("./") && !spec.startsWith("../")) return undefined;
  const dir = fromRel.split("/").slice(0, -1).join("/");
  const abs = normalize(`/${dir}/${spec}`);
  const rel = abs.slice(1);
  if (abs.startsWith("/..") || rel === "") return undefined;
  const parts = rel.split("/");
  const top = parts[0] ?? "";
  const isModTs = (parts.length === 2 && parts[1] === "mod.ts") ||
    // A plugin folder's mod.ts is exported too (`@vnet/cni/azure-vnet`).
    (parts.length === 4 && parts[1] === "plugins" && parts[3] === "mod.ts");
  return { top, isModTs, rel };
}

/** The reason an import breaks the direction rules, or undefined. */
function directionProblem(spec: string, fromRel: string): string | undefined {
  const target = resolveTarget(spec, fromRel);
  if (target === undefined) return undefined;
  const test = isTestFile(fromRel);
  if (target.top === "tests") {
    return test ? undefined : `Only test files import "tests/": "${spec}"`;
  }
  if (test) return undefined;
  const zone = zoneOf(fromRel);
  if (zone === undefined) return undefined;
  if (target.rel === undefined && !MEMBERS.has(target.top)) {
    return `Unknown workspace member "${spec}"`;
  }
  if (!MEMBERS.has(target.top)) return undefined;
  const own = fromRel.split("/")[0];
  if (zone === "cni" && target.rel?.startsWith("cni/plugins/") === true) {
    return `"cni/" outside "cni/plugins/" must not import a plugin: "${spec}"`;
  }
  if (!ALLOWED[zone].has(target.top)) {
    return `"${fromRel}" (${zone}) must not import "${target.top}/": "${spec}"`;
  }
  if (target.top !== own && !target.isModTs) {
    return `Import another member only through its mod.ts ("@vnet/${target.top}"): "${spec}"`;
  }
  return undefined;
}

/** A string literal's value, when the node is one. */
function literalString(node: Deno.lint.Node | null): string | undefined {
  if (node !== null && node.type === "Literal") {
    const value = (node as { value: unknown }).value;
    if (typeof value === "string") return value;
  }
  return undefined;
}

const importDirection: Deno.lint.Rule = {
  create(ctx) {
    const rel = repoPath(ctx.filename);
    if (rel === undefined) return {};
    function check(node: Deno.lint.Node, spec: string | undefined): void {
      if (spec === undefined) return;
      const message = directionProblem(spec, rel ?? "");
      if (message !== undefined) {
        ctx.report({
          node,
          message,
          hint: "See STYLE.md section 1, Import direction",
        });
      }
    }
    return {
      ImportDeclaration(node) {
        check(node.source, node.source.value);
      },
      ExportAllDeclaration(node) {
        check(node.source, node.source.value);
      },
      ExportNamedDeclaration(node) {
        if (node.source !== null) check(node.source, node.source.value);
      },
      ImportExpression(node) {
        check(node.source, literalString(node.source));
      },
    };
  },
};

/** The accessibility keyword a parameter property's text starts with. */
function accessibilityOf(text: string): Deno.lint.Accessibility | undefined {
  const m = /^(?:@[\w.]+(?:\([^)]*\))?\s+)*(private|protected|public)\b/
    .exec(text);
  return m?.[1] as Deno.lint.Accessibility | undefined;
}

const preferPrivateField: Deno.lint.Rule = {
  create(ctx) {
    function check(
      node: Deno.lint.Node,
      accessibility: Deno.lint.Accessibility | undefined,
    ): void {
      if (accessibility !== "private") return;
      ctx.report({
        node,
        message: "Use a #private member instead of the `private` keyword",
        hint: "STYLE.md section 3: private state is #field",
      });
    }
    return {
      PropertyDefinition(node) {
        check(node, node.accessibility);
      },
      AccessorProperty(node) {
        check(node, node.accessibility);
      },
      MethodDefinition(node) {
        if (node.kind !== "constructor") check(node, node.accessibility);
      },
      TSAbstractMethodDefinition(node) {
        check(node, node.accessibility);
      },
      TSAbstractPropertyDefinition(node) {
        check(node, node.accessibility);
      },
      TSParameterProperty(node) {
        // Deno 2.9.6 leaves `accessibility` unset on parameter properties,
        // so the modifier is read from the source text as well.
        const text = ctx.sourceCode.getText(node);
        check(node, node.accessibility ?? accessibilityOf(text));
      },
    };
  },
};

/** Strips `as`, `satisfies`, `!` and type assertions around an expression. */
function unwrap(node: Deno.lint.Node | null): Deno.lint.Node | null {
  let cur = node;
  while (
    cur !== null &&
    (cur.type === "TSAsExpression" || cur.type === "TSSatisfiesExpression" ||
      cur.type === "TSNonNullExpression" || cur.type === "TSTypeAssertion")
  ) {
    cur = cur.expression;
  }
  return cur;
}

/** True when a statement sits at module scope (maybe behind `export`). */
function atModuleScope(node: Deno.lint.Node): boolean {
  const parent = (node as { parent?: Deno.lint.Node }).parent;
  if (parent === undefined) return false;
  if (parent.type === "Program") return true;
  return (parent.type === "ExportNamedDeclaration" ||
    parent.type === "ExportDefaultDeclaration") &&
    parent.parent.type === "Program";
}

const noTopLevelArrowFunction: Deno.lint.Rule = {
  create(ctx) {
    const message =
      "Declare top-level functions with `function`, not an arrow function";
    const hint = "STYLE.md section 3: no top-level arrow functions";
    return {
      VariableDeclarator(node) {
        if (!atModuleScope(node.parent)) return;
        if (unwrap(node.init)?.type === "ArrowFunctionExpression") {
          ctx.report({ node, message, hint });
        }
      },
      ExportDefaultDeclaration(node) {
        if (unwrap(node.declaration)?.type === "ArrowFunctionExpression") {
          ctx.report({ node, message, hint });
        }
      },
    };
  },
};

/** True when a parameter has the shape of an options object. */
function isOptionsParam(param: Deno.lint.Parameter): boolean {
  let p: Deno.lint.Parameter | Deno.lint.Node = param;
  if (p.type === "TSParameterProperty") p = p.parameter;
  if (p.type === "AssignmentPattern") {
    if (p.right.type === "ObjectExpression") return true;
    p = p.left;
  }
  if (p.type === "ObjectPattern") return true;
  if (p.type !== "Identifier") return false;
  const ann = p.typeAnnotation?.typeAnnotation;
  if (ann === undefined) return false;
  if (ann.type === "TSTypeLiteral") return true;
  if (ann.type !== "TSTypeReference") return false;
  const name = ann.typeName.type === "Identifier"
    ? ann.typeName.name
    : ann.typeName.type === "TSQualifiedName"
    ? ann.typeName.right.name
    : "";
  return OPTIONS_TYPE.test(name);
}

/** The report message for a parameter list, or undefined when fine. */
function paramsProblem(
  params: readonly Deno.lint.Parameter[],
): string | undefined {
  const real = params.filter((p) =>
    !(p.type === "Identifier" && p.name === "this")
  );
  if (real.length <= 2) return undefined;
  const last = real[real.length - 1];
  if (real.length === 3 && last !== undefined && isOptionsParam(last)) {
    return undefined;
  }
  return `Exported function takes ${real.length} parameters; use at most 2 positional plus an options object`;
}

type FunctionLike =
  | Deno.lint.FunctionDeclaration
  | Deno.lint.FunctionExpression
  | Deno.lint.ArrowFunctionExpression
  | Deno.lint.TSDeclareFunction;

function isFunctionLike(node: Deno.lint.Node | null): node is FunctionLike {
  return node !== null &&
    (node.type === "FunctionDeclaration" ||
      node.type === "FunctionExpression" ||
      node.type === "ArrowFunctionExpression" ||
      node.type === "TSDeclareFunction");
}

const maxPositionalParams: Deno.lint.Rule = {
  create(ctx) {
    const hint =
      "STYLE.md section 3: at most 2 positional arguments plus an options object";
    // Test-tier helpers mirror node:assert's (actual, expected, message)
    // signature, so test files are exempt.
    const rel = repoPath(ctx.filename);
    if (rel !== undefined && isTestFile(rel)) return {};
    function check(node: Deno.lint.Node | null): void {
      const fn = unwrap(node);
      if (!isFunctionLike(fn)) return;
      const message = paramsProblem(fn.params);
      if (message !== undefined) ctx.report({ node: fn, message, hint });
    }
    return {
      Program(program) {
        const local = new Map<string, Deno.lint.Node[]>();
        function remember(name: string, node: Deno.lint.Node | null): void {
          if (node === null) return;
          local.set(name, [...local.get(name) ?? [], node]);
        }
        function collect(decl: Deno.lint.Node): void {
          if (isFunctionLike(decl) && "id" in decl && decl.id !== null) {
            remember(decl.id.name, decl);
          } else if (decl.type === "VariableDeclaration") {
            for (const d of decl.declarations) {
              if (d.id.type === "Identifier") remember(d.id.name, d.init);
            }
          }
        }
        const exported: string[] = [];
        for (const stmt of program.body) {
          if (stmt.type === "ExportNamedDeclaration") {
            if (stmt.declaration !== null && stmt.exportKind === "value") {
              if (stmt.declaration.type === "VariableDeclaration") {
                for (const d of stmt.declaration.declarations) check(d.init);
              } else check(stmt.declaration);
            }
            if (stmt.source === null) {
              for (const s of stmt.specifiers) {
                if (s.local.type === "Identifier") exported.push(s.local.name);
              }
            }
          } else if (stmt.type === "ExportDefaultDeclaration") {
            if (stmt.declaration.type === "Identifier") {
              exported.push(stmt.declaration.name);
            } else check(stmt.declaration);
          } else {
            collect(stmt);
          }
        }
        for (const name of exported) {
          for (const node of local.get(name) ?? []) check(node);
        }
      },
    };
  },
};

/** The `vnet` lint plugin. */
const plugin: Deno.lint.Plugin = {
  name: "vnet",
  rules: {
    "import-direction": importDirection,
    "prefer-private-field": preferPrivateField,
    "no-top-level-arrow-function": noTopLevelArrowFunction,
    "max-positional-params": maxPositionalParams,
  },
};

export default plugin;
