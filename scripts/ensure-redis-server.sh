#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH for the Redis integration tests (tests/integration),
# which start their own server on a free loopback port. Installs it with apt-get when it is
# missing (with sudo when not root); says clearly what to do when it cannot.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
    exit 0
fi
echo "redis-server is not on PATH; the Redis integration tests need it: installing it..."
fail() {
    echo "ERROR: could not install redis-server ($1)." >&2
    echo "Install it yourself (apt-get install redis-server, brew install redis," >&2
    echo "dnf install redis, ...) so that \`redis-server\` is on PATH, then run make test again." >&2
    exit 1
}
command -v apt-get >/dev/null 2>&1 || fail "no apt-get on this machine"
if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    fail "not root, and no sudo"
fi
"${SUDO[@]}" apt-get update -qq || fail "apt-get update failed"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server \
    || fail "apt-get install redis-server failed"
command -v redis-server >/dev/null 2>&1 || fail "installed, but still not on PATH"
echo "redis-server installed: $(command -v redis-server)"
