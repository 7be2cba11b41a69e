/**
 * The fixture plugin's VERSION answer, imported dynamically by
 * `fixture_plugin.ts` (a chunk of its own in the build).
 *
 * @module
 */
import meta from "./fixture_meta.json" with { type: "json" };

/** The versions the fixture plugin supports. */
export const VERSIONS: readonly string[] = meta.supportedVersions;
