#!/bin/sh
# Entrypoint of the DaemonSet image (deploy/Containerfile, built by
# `deno task image`). Host paths are mounted at the same paths inside the
# container, so the launchers' absolute paths hold on the node.
#
# Image layout: /usr/local/bin/deno (the pinned deno), /app/dist (the
# launchers, built with --deno-path /opt/azure-vnet/deno), /app/installer.js
# (tools/installer bundled), /app/entrypoint.sh (this file).
#
#   install  (initContainer install-cni) puts the pinned deno on the node at
#            /opt/azure-vnet/deno, installs the plugins into /opt/cni/bin and
#            10-azure.conflist into /etc/cni/net.d, and exits with the
#            installer's code (env AZURE_VNET_MASTER, AZURE_VNET_CNI_VERSION,
#            AZURE_VNET_FORCE). First the installer checks the node itself,
#            through /proc/1/root (hostPID), for what the plugins load and
#            run from it when the agent does not answer (libnl, ebtables,
#            glibc): the image's own copies prove nothing about the node.
#            AZURE_VNET_SKIP_HOST_CHECK=true skips that (an unusual node);
#            AZURE_VNET_HOST_ROOT names another view of the node's root.
#   run      (container azure-vnet) execs the node agent (#14) that install
#            put into /opt/cni/bin: `azure-vnet-agent serve`, the container's
#            main process, so SIGTERM reaches it (it drains and removes its
#            socket; the plugins then run in process).
#   uninstall  (run by hand, with install-cni's mounts) removes what install
#            put into /opt/cni/bin and /etc/cni/net.d and gives back the
#            files it replaced (kept as <file>.pre-azure-vnet: the Go
#            plugin's, another CNI's 10-azure.conflist).
set -eu
APP="${APP:-/app}"
NODE_DENO=/opt/azure-vnet/deno

install() {
  mkdir -p /opt/azure-vnet /var/lib/azure-vnet/deno
  # The launchers exec $NODE_DENO: put the pinned deno on the node.
  if ! cmp -s /usr/local/bin/deno "$NODE_DENO"; then
    cp /usr/local/bin/deno "$NODE_DENO.tmp"
    chmod 0755 "$NODE_DENO.tmp"
    mv -f "$NODE_DENO.tmp" "$NODE_DENO"
  fi
  set -- --dist "$APP/dist" --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d
  [ -n "${AZURE_VNET_MASTER:-}" ] && set -- "$@" --master "$AZURE_VNET_MASTER"
  [ -n "${AZURE_VNET_CNI_VERSION:-}" ] && set -- "$@" --cni-version "$AZURE_VNET_CNI_VERSION"
  [ "${AZURE_VNET_FORCE:-}" = "true" ] && set -- "$@" --force
  if [ "${AZURE_VNET_SKIP_HOST_CHECK:-}" = "true" ]; then
    set -- "$@" --skip-host-check
  else
    set -- "$@" --host-root "${AZURE_VNET_HOST_ROOT:-/proc/1/root}"
  fi
  installer "$@"
}

# The installer's own code cache stays in the container. --allow-all:
# Deno refuses its file APIs on /proc/* (the node's root, /proc/1/root) to
# anything less, and the installer already runs any program it likes.
installer() {
  DENO_DIR=/tmp/azure-vnet-installer-deno DENO_NO_UPDATE_CHECK=1 \
    exec /usr/local/bin/deno run --no-config --cached-only --no-prompt \
    --allow-all "$APP/installer.js" "$@"
}

uninstall() {
  installer --uninstall --bin-dir /opt/cni/bin
}

run() {
  # The installed launcher, not /app/dist: it is what the plugins' installer
  # verified, and it runs the node's deno (/opt/azure-vnet/deno) with the
  # node's DENO_DIR (/var/lib/azure-vnet/deno), as the plugins do.
  agent=/opt/cni/bin/azure-vnet-agent
  if [ ! -x "$agent" ]; then
    echo "entrypoint.sh: no $agent (the install-cni init container installs it)" >&2
    exit 1
  fi
  exec "$agent" serve
}

case "${1:-}" in
  install) install ;;
  run) run ;;
  uninstall) uninstall ;;
  *)
    echo "usage: entrypoint.sh install|run|uninstall" >&2
    exit 2
    ;;
esac
