/**
 * Placeholder: the project's lint rules are filled in by issue #2.
 *
 * @module
 */
const plugin: Deno.lint.Plugin = { name: "vnet", rules: {} };
export default plugin;
