#!/usr/bin/env bash
# Install what the tests need and (re)build .venv. Idempotent; run as root; quiet on success.
#   - system packages (Debian): dockerd, dnsmasq, static busybox, iproute2, iptables, kmod, make,
#     python3 with venv, docker-compose (Compose v1, 1.29), docker-registry and debootstrap (the
#     managed plugin's build)
#   - Docker 28.5 (dockerd, CLI, containerd, Compose v2) from Debian forky, unpacked into a
#     private directory by scripts/docker28.sh (nothing installed system-wide); skipped when
#     NET_DHCP_ENGINES names no 28 engine (e.g. NET_DHCP_ENGINES=20.10)
#   - .venv with python3 (>= 3.11) and `pip install -e '.[test]'`, redone only when
#     pyproject.toml changed since the last successful install (hash kept in .venv).
# Environment: PYTHON (default python3) picks the interpreter for a new .venv;
# NET_DHCP_ENGINES (see tests/conftest.py); NET_DHCP_DOCKER28_DIR (see scripts/docker28.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

die() { echo "setup.sh: $*" >&2; exit 1; }

# Run a noisy command quietly; on failure show its output and stop.
quiet() {
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        echo "setup.sh: failed: $*" >&2
        tail -n 40 "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

static_busybox() {
    # ldd fails ("not a dynamic executable") on a static binary.
    [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1
}

missing=()
for cmd in dockerd dnsmasq ip iptables modprobe make docker-registry debootstrap dpkg-deb; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
# Compose v1 at the path the tests use (a docker-compose v2 elsewhere on PATH is not it).
[ -x /usr/bin/docker-compose ] || missing+=("docker-compose")
static_busybox || missing+=("busybox-static")
# A Python that can make a venv (Debian's python3 needs python3-venv for ensurepip).
"${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("python3-venv")

if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}, and installing needs root"
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}, and no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    quiet apt-get update
    quiet apt-get install -y --no-install-recommends \
        docker.io dnsmasq-base busybox-static iproute2 iptables kmod make python3 python3-venv \
        docker-compose docker-registry debootstrap dpkg
    for cmd in dockerd dnsmasq ip iptables docker-registry debootstrap; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after apt-get install"
    done
    [ -x /usr/bin/docker-compose ] \
        || die "/usr/bin/docker-compose still missing after apt-get install"
    static_busybox || die "/bin/busybox is still not a static busybox after apt-get install"
fi

# Docker 28.5 beside the system's 20.10 (quiet when already unpacked).
engines="${NET_DHCP_ENGINES:-28.5}"
case ",${engines// /,}," in
    *,28*|*,docker28*) bash scripts/docker28.sh || die "scripts/docker28.sh failed" ;;
esac

python="${PYTHON:-python3}"
venv=.venv
stamp="$venv/.net-dhcp-setup.sha256"

if [ -x "$venv/bin/python" ] && ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    rm -rf "$venv"   # broken venv (its interpreter went away): rebuild it
fi
if [ ! -x "$venv/bin/python" ]; then
    command -v "$python" >/dev/null 2>&1 || die "$python not found (need Python >= 3.11)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$python is $("$python" -V 2>&1); need Python >= 3.11"
    quiet "$python" -m venv "$venv"
    rm -f "$stamp"
fi

want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" != "$have" ]; then
    quiet "$venv/bin/pip" install -q -e '.[test]'
    echo "$want" >"$stamp"
fi
