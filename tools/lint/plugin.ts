/**
 * Our own lint rules (docs/STYLE.md sections 1, 3 and 10), loaded by
 * `deno lint` through `"plugins"` in the root `deno.json`.
 *
 * Rules (ids are `vnet/<rule>`):
 *
 * - `import-direction`: the member import graph of docs/STYLE.md section 1 (the
 *   `MEMBERS` table). `address` (`netlink/address`, pure address
 *   arithmetic) is the leaf; `netlink`, `azure` and `cni` import only
 *   `address`; `ipam` may import `cni`, `azure` and `address`; each plugin
 *   is its own member
 *   (`cni/plugins/azure-vnet`, `ipam/plugins/azure-vnet-ipam`) that imports
 *   the libraries; `tools` may import any member. Another member is reached
 *   only through its `mod.ts` (`"@vnet/x"` or a relative path to its
 *   `mod.ts`). Only test files
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

/** A workspace member: its folder, its `@vnet/` name and what it imports. */
interface Member {
  /** Repository-relative folder, such as `cni/plugins/azure-vnet`. */
  folder: string;
  /** The name after `@vnet/`. */
  name: string;
  /** Names of the other members it may import. */
  imports: readonly string[];
}

/**
 * The members and the import direction between them (docs/STYLE.md,
 * "Import direction"; keep in sync with the root deno.json `workspace`). A
 * member nested in another's folder (a plugin) is its own member.
 */
const MEMBERS: readonly Member[] = [
  { folder: "netlink/address", name: "address", imports: [] },
  { folder: "netlink", name: "netlink", imports: ["address"] },
  { folder: "azure", name: "azure", imports: ["address"] },
  { folder: "azure/arm", name: "arm", imports: ["azure", "address"] },
  { folder: "cni", name: "cni", imports: ["address"] },
  { folder: "cni/forward", name: "forward", imports: [] },
  { folder: "ipam", name: "ipam", imports: ["cni", "azure", "address"] },
  {
    folder: "ipam/plugins/azure-vnet-ipam",
    name: "azure-vnet-ipam",
    imports: ["cni", "ipam", "forward"],
  },
  {
    folder: "cni/plugins/azure-vnet",
    name: "azure-vnet",
    imports: ["cni", "netlink", "azure", "ipam", "address", "forward"],
  },
  {
    folder: "cni/agent",
    name: "azure-vnet-agent",
    imports: [
      "cni",
      "forward",
      "azure-vnet",
      "azure-vnet-ipam",
      "ipam",
      "address",
      "arm",
      "netlink",
    ],
  },
  {
    folder: "tools",
    name: "tools",
    imports: [
      "cni",
      "ipam",
      "netlink",
      "azure",
      "azure-vnet",
      "azure-vnet-ipam",
      "address",
      "arm",
    ],
  },
];

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

/** The member that holds a repository-relative path (the deepest folder). */
function memberOf(rel: string): Member | undefined {
  let best: Member | undefined;
  for (const m of MEMBERS) {
    if (
      rel.startsWith(`${m.folder}/`) &&
      m.folder.length > (best?.folder.length ?? -1)
    ) best = m;
  }
  return best;
}

/** Where an import specifier points, inside the repository. */
interface Target {
  /** The member, or undefined for `tests/` and unknown `@vnet/` names. */
  member: Member | undefined;
  /** True when the target is `tests/...`. */
  isTests: boolean;
  /** True when the target is that member's public door (`mod.ts`). */
  isModTs: boolean;
}

/** Resolves a specifier against the importing file; undefined = external. */
function resolveTarget(spec: string, fromRel: string): Target | undefined {
  const pkg = /^@vnet\/([^/]+)(\/.*)?$/.exec(spec);
  if (pkg) {
    return {
      member: MEMBERS.find((m) => m.name === pkg[1]),
      isTests: false,
      isModTs: pkg[2] === undefined,
    };
  }
  if (!spec.startsWith("./") && !spec.startsWith("../")) return undefined;
  const dir = fromRel.split("/").slice(0, -1).join("/");
  const abs = normalize(`/${dir}/${spec}`);
  const rel = abs.slice(1);
  if (abs.startsWith("/..") || rel === "") return undefined;
  const member = memberOf(rel);
  return {
    member,
    isTests: rel.startsWith("tests/"),
    isModTs: member !== undefined && rel === `${member.folder}/mod.ts`,
  };
}

/** The reason an import breaks the direction rules, or undefined. */
function directionProblem(spec: string, fromRel: string): string | undefined {
  const target = resolveTarget(spec, fromRel);
  if (target === undefined) return undefined;
  const test = isTestFile(fromRel);
  if (target.isTests) {
    return test ? undefined : `Only test files import "tests/": "${spec}"`;
  }
  if (test) return undefined;
  const own = memberOf(fromRel);
  if (own === undefined) return undefined;
  if (target.member === undefined) {
    return spec.startsWith("@vnet/")
      ? `Unknown workspace member "${spec}"`
      : undefined;
  }
  if (target.member === own) return undefined;
  if (!own.imports.includes(target.member.name)) {
    return `"${fromRel}" (@vnet/${own.name}) must not import @vnet/${target.member.name}: "${spec}"`;
  }
  if (!target.isModTs) {
    return `Import another member only through its mod.ts ("@vnet/${target.member.name}"): "${spec}"`;
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
          hint: "See docs/STYLE.md section 1, Import direction",
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
        hint: "docs/STYLE.md section 3: private state is #field",
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
    const hint = "docs/STYLE.md section 3: no top-level arrow functions";
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
      "docs/STYLE.md section 3: at most 2 positional arguments plus an options object";
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
