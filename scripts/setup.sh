#!/usr/bin/env bash
# Install what the tests need and (re)build .venv. Idempotent; run as root; quiet on success.
#   - system packages (Debian): dockerd, dnsmasq, static busybox, iproute2, iptables, kmod, make,
#     python3 with venv
#   - .venv with python3 (>= 3.11) and `pip install -e '.[test]'`, redone only when
#     pyproject.toml changed since the last successful install (hash kept in .venv).
# Environment: PYTHON (default python3) picks the interpreter for a new .venv.
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
for cmd in dockerd dnsmasq ip iptables modprobe make; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
static_busybox || missing+=("busybox-static")
# A Python that can make a venv (Debian's python3 needs python3-venv for ensurepip).
"${PYTHON:-python3}" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=("python3-venv")

if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing ${missing[*]}, and installing needs root"
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]}, and no apt-get to install them"
    export DEBIAN_FRONTEND=noninteractive
    quiet apt-get update
    quiet apt-get install -y --no-install-recommends \
        docker.io dnsmasq-base busybox-static iproute2 iptables kmod make python3 python3-venv
    for cmd in dockerd dnsmasq ip iptables; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after apt-get install"
    done
    static_busybox || die "/bin/busybox is still not a static busybox after apt-get install"
fi

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
