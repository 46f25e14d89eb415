#!/usr/bin/env bash
# Installs the Redis server that the shared-cache tests start (Debian's `redis-server` package; the
# tests run their own server on a free loopback port, never the system service). A no-op when
# `redis-server` is already on PATH. Prints the path of `redis-server` on its last line.
#
#   bash scripts/install-redis.sh
set -euo pipefail

if ! command -v redis-server >/dev/null; then
    if ! command -v apt-get >/dev/null; then
        echo "error: redis-server not found; install Redis 6 or later (or Valkey) so that \`redis-server\` is on PATH" >&2
        exit 1
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "error: redis-server not found; run \`sudo apt-get install redis-server\`" >&2
        exit 1
    fi
    echo "installing redis-server (Debian package)" >&2
    # The package's service is not started here (no init system), and the tests never use it.
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends redis-server >/dev/null; }
fi
redis-server --version >&2
command -v redis-server
