#!/bin/sh
# DaemonSet entrypoint: installs the plugins and 10-azure.conflist onto the
# node, then sleeps so the pod stays Ready. Host paths are mounted at the same
# paths inside the container (/opt/cni/bin, /etc/cni/net.d, /opt/azure-vnet,
# /var/lib/azure-vnet), so the launchers' absolute paths hold on the host.
#
# Image layout: /app (the repo with dist/ built by
#   deno task build -- --deno-path /opt/azure-vnet/deno --no-compile)
# and the pinned deno at /usr/local/bin/deno.
set -eu
APP="${APP:-/app}"
mkdir -p /opt/azure-vnet /var/lib/azure-vnet/deno
# The launchers exec /opt/azure-vnet/deno: put the pinned deno on the host.
if ! cmp -s /usr/local/bin/deno /opt/azure-vnet/deno; then
  cp /usr/local/bin/deno /opt/azure-vnet/deno.tmp
  chmod 0755 /opt/azure-vnet/deno.tmp
  mv -f /opt/azure-vnet/deno.tmp /opt/azure-vnet/deno
fi
set -- --dist "$APP/dist" --bin-dir /opt/cni/bin --conf-dir /etc/cni/net.d
[ -n "${AZURE_VNET_MASTER:-}" ] && set -- "$@" --master "$AZURE_VNET_MASTER"
[ -n "${AZURE_VNET_CNI_VERSION:-}" ] && set -- "$@" --cni-version "$AZURE_VNET_CNI_VERSION"
[ "${AZURE_VNET_FORCE:-}" = "true" ] && set -- "$@" --force
/opt/azure-vnet/deno run -A "$APP/tools/installer/main.ts" "$@"
exec sleep infinity
