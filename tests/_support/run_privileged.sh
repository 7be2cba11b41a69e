#!/usr/bin/env bash
# Runs a command (the privileged test tiers) inside a fresh network and mount
# namespace, so the machine's own interfaces are never touched. Loopback is
# brought up inside; every netns the tests create lives and dies in there.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "Cannot run privileged tests: not root; run \`deno task test:unit\` for the unprivileged tier" >&2
  exit 1
fi
if [ "${VNET_IN_TEST_NETNS:-}" != "1" ]; then
  export VNET_IN_TEST_NETNS=1
  exec unshare --net --mount --propagation private -- "$0" "$@"
fi
ip link set lo up
# Namespace files of the tests live on a tmpfs private to this mount
# namespace, so nothing leaks into the machine's /run/netns.
mkdir -p /run/netns
mount -t tmpfs -o mode=0755 vnet-test-netns /run/netns
exec "$@"
