/**
 * A plugin's verbs driven through `runPlugin()` as a runtime drives the
 * binary: the environment, the config as stdin bytes (so that skel's own
 * validation runs), stdout captured.
 *
 * @module
 */
import { type PluginHandlers, runPlugin } from "@vnet/cni";

/** What {@link runThroughSkel} runs. */
export interface SkelCall {
  /** The plugin's name, for its log lines. */
  readonly name: string;
  /** `CNI_*` variables (`CNI_COMMAND` included). */
  readonly env: Readonly<Record<string, string>>;
  /** The network config, sent as JSON on stdin. */
  readonly config: unknown;
}

/**
 * Runs one call through `runPlugin()`.
 *
 * @param handlers The plugin's verbs.
 * @param call Its name, environment and config.
 * @returns The exit code and what was printed on stdout.
 */
export async function runThroughSkel(
  handlers: PluginHandlers,
  call: SkelCall,
): Promise<{ code: number; stdout: string }> {
  const out: string[] = [];
  const code = await runPlugin(handlers, { name: call.name, version: "0" }, {
    env: call.env,
    stdin: new TextEncoder().encode(JSON.stringify(call.config)),
    stdout: (t) => out.push(t),
    stderr: () => {},
    args: [],
  });
  return { code, stdout: out.join("") };
}
