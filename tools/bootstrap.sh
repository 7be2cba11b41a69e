#!/usr/bin/env bash
# Installs everything the project needs on a Debian 12 machine, as root.
# Idempotent and quiet: when everything is present it only checks.
set -euo pipefail

DENO_VERSION="2.9.6"
DENO_PREFIX="/usr/local/lib/azure-vnet-deno"
APT_PACKAGES=(libnl-3-200 libnl-route-3-200 ebtables iproute2 iputils-ping
  containernetworking-plugins hyperfine openssl util-linux procps
  podman mmdebstrap runc)

log() { printf 'bootstrap: %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root (it installs apt packages)"
  exit 1
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

have_deno() {
  command -v deno >/dev/null 2>&1 \
    && deno --version 2>/dev/null | head -n1 | grep -q "deno ${DENO_VERSION} "
}
if ! have_deno; then
  if ! command -v npm >/dev/null 2>&1; then
    log "npm is needed to install deno ${DENO_VERSION}"
    exit 1
  fi
  log "installing deno ${DENO_VERSION} from the npm registry"
  mkdir -p "$DENO_PREFIX"
  npm install --silent --no-audit --no-fund --prefix "$DENO_PREFIX" \
    "deno@${DENO_VERSION}" >/dev/null
  ln -sf "$DENO_PREFIX/node_modules/@deno/linux-x64-glibc/deno" /usr/local/bin/deno
fi

cd "$(dirname "$0")/.."
# Pre-cache every npm dependency (frozen to deno.lock) so tests can run inside
# fresh network namespaces without registry access.
deno install --frozen --quiet >/dev/null
log "ready: $(deno --version | head -n1)"
