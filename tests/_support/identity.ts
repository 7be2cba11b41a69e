/**
 * Makes `@azure/identity`'s ManagedIdentityCredential use the emulator's
 * IMDS token endpoint only: removes every variable that would send it to
 * App Service, Cloud Shell or Arc instead, and points it at `imdsUrl`.
 *
 * @module
 */

/** The variables that select another managed identity source. */
const OTHER_SOURCES = [
  "IDENTITY_ENDPOINT",
  "IDENTITY_HEADER",
  "IDENTITY_SERVER_THUMBPRINT",
  "IMDS_ENDPOINT",
  "MSI_ENDPOINT",
  "MSI_SECRET",
] as const;

/**
 * Clears the other sources; with `imdsUrl`, sets the IMDS host the
 * credential asks for tokens.
 *
 * @param imdsUrl The emulator's IMDS base URL.
 */
export function useEmulatorIdentity(imdsUrl?: string): void {
  for (const name of OTHER_SOURCES) Deno.env.delete(name);
  if (imdsUrl !== undefined) {
    Deno.env.set("AZURE_POD_IDENTITY_AUTHORITY_HOST", imdsUrl);
  }
}
