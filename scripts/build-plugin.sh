#!/usr/bin/env bash
# Build net-dhcp as a managed (v2) Docker plugin, with no container registry, and
# `docker plugin create` it.  See plugin/README.md.
#
#   scripts/build-plugin.sh [options] [ARCH...]
#
# ARCH: amd64, 386, arm64-v8, arm-v7, or `all` (default: this machine's).  Each one gives the
# plugin NAME:<version>-linux-<ARCH>, the version being pyproject.toml's.
#   --name NAME   plugin name without tag (default net-dhcp, env PLUGIN_NAME); to push, the full
#                 repository: REGISTRY[:PORT]/OWNER/net-dhcp, or OWNER/net-dhcp for Docker Hub
#   --no-create   only build the plugin folders (build/plugin/<tag>/{config.json,rootfs})
#   --out DIR     put the plugin folders in DIR/<tag>/ instead (the cache stays in BUILD_DIR)
#   --replace     remove an existing (disabled) plugin of the same NAME:TAG first
#   --push        `docker plugin push NAME:TAG` after creating it (maintainers)
#   --refresh     rebuild the cached Debian base and wheels (new security updates)
# Environment: SUITE (bookworm), MIRROR (http://deb.debian.org/debian), SECURITY_MIRROR
# (http://deb.debian.org/debian-security; "none" to leave it out), BUILD_DIR (build/plugin),
# DOCKER (docker; DOCKER_HOST picks the engine), PIP (.venv/bin/pip or python3 -m pip).
#
# How: mmdebstrap --variant=extract unpacks python3 and its dependencies (Debian packages of the
# target architecture: no emulation, no maintainer scripts) into a pruned base, cached in
# BUILD_DIR/cache; each build copies the base and installs the pinned wheels of
# plugin/requirements.txt (pip's --platform/--target, so foreign architectures need no qemu
# either) and net-dhcp's own wheel into a virtualenv at /opt/net-dhcp.  Runs as root.
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
umask 022

die() { echo "build-plugin.sh: $*" >&2; exit 1; }
say() { echo "build-plugin.sh: $*" >&2; }

NAME="${PLUGIN_NAME:-net-dhcp}"
SUITE="${SUITE:-bookworm}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
BUILD_DIR="${BUILD_DIR:-build/plugin}"
DOCKER="${DOCKER:-docker}"
# Bump when the base's recipe (packages, pruning) changes: it is part of the cache key.
BASE_RECIPE=2
BASE_PACKAGES=python3

create=1 replace=0 push=0 refresh=0 out_dir=
archs=()
while [ $# -gt 0 ]; do
    case "$1" in
        --name) [ $# -ge 2 ] || die "--name needs a value"; NAME="$2"; shift ;;
        --name=*) NAME="${1#--name=}" ;;
        --no-create) create=0 ;;
        --out) [ $# -ge 2 ] || die "--out needs a folder"; out_dir="$2"; shift ;;
        --out=*) out_dir="${1#--out=}" ;;
        --replace) replace=1 ;;
        --push) push=1 ;;
        --refresh) refresh=1 ;;
        -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        all) archs+=(amd64 386 arm64-v8 arm-v7) ;;
        -*) die "unknown option $1 (try --help)" ;;
        *) archs+=("$1") ;;
    esac
    shift
done

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap unpacks as root; docker plugin create)"

# Docker's architecture names <-> Debian's and the wheels' platform tags.
deb_arch() {
    case "$1" in
        amd64) echo amd64 ;; 386) echo i386 ;; arm64-v8) echo arm64 ;; arm-v7) echo armhf ;;
        *) die "unknown architecture $1: use amd64, 386, arm64-v8, arm-v7 or all" ;;
    esac
}
wheel_arch() {
    case "$1" in
        amd64) echo x86_64 ;; 386) echo i686 ;; arm64-v8) echo aarch64 ;; arm-v7) echo armv7l ;;
    esac
}
qemu_for() {
    case "$1" in
        386) echo qemu-i386-static ;; arm64-v8) echo qemu-aarch64-static ;;
        arm-v7) echo qemu-arm-static ;;
    esac
}
host_arch() {
    case "$(dpkg --print-architecture 2>/dev/null || uname -m)" in
        amd64|x86_64) echo amd64 ;; i386|i686) echo 386 ;; arm64|aarch64) echo arm64-v8 ;;
        armhf|armv7l) echo arm-v7 ;; *) die "cannot tell this machine's architecture" ;;
    esac
}
[ "${#archs[@]}" -gt 0 ] || archs=("$(host_arch)")
for a in "${archs[@]}"; do deb_arch "$a" >/dev/null; done
case "$NAME" in *:*|*@*) die "--name takes no tag: the tag is <version>-linux-<arch>" ;; esac
if [ "$push" -eq 1 ] && [[ "$NAME" != */* ]]; then
    die "--push needs --name REGISTRY/OWNER/net-dhcp (or OWNER/net-dhcp for Docker Hub)"
fi

# pip, minus the warnings this machine's index configuration prints for every package.
run_pip() {
    "${pip[@]}" "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

if [ -x .venv/bin/pip ]; then
    pip=(.venv/bin/pip)
    python=.venv/bin/python
else
    python=python3
    pip=(python3 -m pip)
fi
[ -z "${PIP:-}" ] || read -r -a pip <<<"$PIP"
version="$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
[ -n "$version" ] || die "no version in pyproject.toml"

if ! command -v mmdebstrap >/dev/null 2>&1; then
    say "installing mmdebstrap (Debian package)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null \
             && apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; } \
        || die "apt-get install mmdebstrap failed"
fi

host_py_minor="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
cache="$BUILD_DIR/cache"
mkdir -p "$cache"
out_dir="${out_dir:-$BUILD_DIR}"
# One build at a time per BUILD_DIR: builds share the cache (and, without --out, the folders).
exec 9>"$BUILD_DIR/.lock"
flock 9
sources=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main")
[ "$SECURITY_MIRROR" = none ] || sources+=("deb $SECURITY_MIRROR $SUITE-security main")

# The Debian base of one architecture: python3 and what it depends on, pruned; cached.
base_for() {
    local arch="$1" darch key dir tmp
    darch="$(deb_arch "$arch")"
    key="$(printf '%s\n' "$BASE_RECIPE" "$SUITE" "$BASE_PACKAGES" "${sources[@]}" \
        | sha256sum | cut -c1-12)"
    dir="$cache/base-$darch-$key"
    if [ "$refresh" -eq 1 ] || [ ! -f "$dir/.complete" ]; then
        rm -rf "$dir" "$dir.tmp"
        tmp="$dir.tmp"
        say "$arch: unpacking Debian $SUITE's $BASE_PACKAGES ($darch) into $dir"
        # shellcheck disable=SC2016 # $1 is the hook's argument, expanded by mmdebstrap
        mmdebstrap --quiet --mode=root --variant=extract --architectures="$darch" \
            --include="$BASE_PACKAGES" --skip=output/dev \
            --extract-hook='mkdir -p "$1/usr/share/net-dhcp"; ls "$1/var/cache/apt/archives" | grep "\.deb$" >"$1/usr/share/net-dhcp/debian-packages.txt"' \
            "$SUITE" "$tmp" "${sources[@]}" >&2 || die "mmdebstrap failed for $darch"
        prune "$tmp"
        compile "$tmp" "$tmp/usr/lib/python3.11"
        touch "$tmp/.complete"
        mv "$tmp" "$dir"
        # Older bases of this architecture are stale now.
        find "$cache" -maxdepth 1 -name "base-$darch-*" ! -name "base-$darch-$key" \
            -exec rm -rf {} +
    fi
    echo "$dir"
}

# What a network plugin never reads: documentation (the copyright files stay), translations,
# iconv modules, Python's test suite, IDLE, 2to3, pydoc's topics, ensurepip, apt's lists.
prune() {
    local r="$1"
    find "$r/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$r"/usr/share/{man,info,locale,lintian,linda,bug,doc-base} \
        "$r"/usr/lib/*-linux-gnu*/gconv \
        "$r"/usr/lib/python3.*/{test,idlelib,lib2to3,pydoc_data,ensurepip,turtledemo,tkinter} \
        "$r"/usr/lib/python3.*/{turtle.py,__phello__} \
        "$r"/var/cache/* "$r"/var/lib/apt/lists/* "$r"/var/log/*
    mkdir -p "$r/var/log" "$r/tmp" "$r/run" "$r/proc" "$r/sys" "$r/dev" \
        "$r/var/lib/net-dhcp" "$r/run/host-netns"
    chmod 1777 "$r/tmp"
    printf 'root:x:0:0:root:/root:/usr/sbin/nologin\n' >"$r/etc/passwd"
    printf 'root:x:0:\n' >"$r/etc/group"
}

# Byte-compile with this machine's Python when it is the same 3.11 (a .pyc depends on the
# minor version only); hash-based, so the result depends on the sources alone.
compile() {
    local root="$1"; shift
    if [ "$host_py_minor" = 3.11 ]; then
        python3 -m compileall -q -j0 --invalidation-mode unchecked-hash -s "$root" -p / "$@" \
            >/dev/null || die "compileall failed in $root"
    else
        say "no python3.11 here: not byte-compiling (the plugin compiles on first start)"
    fi
}

# Pinned wheels of one architecture (cached per requirements file).
wheels_for() {
    local arch="$1" warch key dir
    warch="$(wheel_arch "$arch")"
    key="$(sha256sum plugin/requirements.txt | cut -c1-12)"
    dir="$cache/wheels-$warch-$key"
    if [ "$refresh" -eq 1 ] || [ ! -f "$dir/.complete" ]; then
        rm -rf "$dir"
        say "$arch: downloading the pinned wheels ($warch)"
        run_pip download -q --no-deps --only-binary=:all: -d "$dir" \
            "${platform_args[@]}" -r plugin/requirements.txt >&2 \
            || die "pip download failed for $warch"
        touch "$dir/.complete"
        find "$cache" -maxdepth 1 -name "wheels-$warch-*" ! -name "wheels-$warch-$key" \
            -exec rm -rf {} +
    fi
    echo "$dir"
}

# The package itself, built once per run (pure Python, any architecture).
own_wheel_dir="$(mktemp -d)"
trap 'rm -rf "$own_wheel_dir"' EXIT
say "building net-dhcp $version's wheel"
run_pip wheel -q --no-deps -w "$own_wheel_dir" . >&2 || die "pip wheel . failed"
own_wheel="$(ls "$own_wheel_dir"/net_dhcp-*.whl)"

for arch in "${archs[@]}"; do
    start=$SECONDS
    tag="$version-linux-$arch"
    warch="$(wheel_arch "$arch")"
    platform_args=(--python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
                   --platform "manylinux_2_17_$warch" --platform "manylinux2014_$warch"
                   --platform "manylinux_2_28_$warch" --platform "manylinux_2_31_$warch"
                   --platform "manylinux_2_5_$warch" --platform "manylinux1_$warch"
                   --platform any)
    base="$(base_for "$arch")"
    wheels="$(wheels_for "$arch")"
    out="$out_dir/$tag"
    rm -rf "$out"
    mkdir -p "$out"
    cp -a "$base" "$out/rootfs"
    rm -f "$out/rootfs/.complete"
    root="$out/rootfs"
    [ -e "$root/usr/bin/python3.11" ] \
        || die "$arch: the base has no python3.11 (Debian $SUITE), the wheels are for 3.11"
    pyver="$(sed -n 's/^python3\.11-minimal_\([0-9.]*\)-.*/\1/p' \
        "$root/usr/share/net-dhcp/debian-packages.txt")"

    # A virtualenv by hand (what `python3 -m venv --without-pip` writes), so that no target
    # binary has to run on this machine.
    venv="$root/opt/net-dhcp"
    site="$venv/lib/python3.11/site-packages"
    mkdir -p "$venv/bin" "$site"
    ln -s /usr/bin/python3.11 "$venv/bin/python"
    ln -s python "$venv/bin/python3"
    printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n' \
        "${pyver:-3.11}" >"$venv/pyvenv.cfg"
    run_pip install -q --no-index --no-deps --no-compile --only-binary=:all: \
        --target "$site" "${platform_args[@]}" "$wheels"/*.whl "$own_wheel" >&2 \
        || die "$arch: pip install into the rootfs failed"
    rm -rf "${site:?}/bin"   # console scripts pointing at this machine's interpreter
    {
        echo "net-dhcp $version, linux/$arch, Debian $SUITE, Python $pyver"
        echo "wheels:"
        for w in "$wheels"/*.whl; do echo "  ${w##*/}"; done
        echo "  $(basename "$own_wheel")"
    } >"$venv/BUILD-INFO"
    compile "$root" "$site"
    cp plugin/config.json "$out/config.json"

    # Smoke test: import the daemon with the rootfs's own interpreter.
    check='import net_dhcp.daemon, net_dhcp.cli, aiohttp, pyroute2, prometheus_client, sqlite3, ssl; print("ok")'
    if [ "$arch" = "$(host_arch)" ]; then
        chroot "$root" /opt/net-dhcp/bin/python -c "$check" >/dev/null \
            || die "$arch: the rootfs cannot import net_dhcp"
        smoke="imports checked in a chroot"
    elif q="$(qemu_for "$arch")" && command -v "$q" >/dev/null 2>&1; then
        QEMU_LD_PREFIX="$root" PYTHONHOME="$root/usr" PYTHONPATH="$site" \
            "$q" "$root/usr/bin/python3.11" -c "$check" >/dev/null \
            || die "$arch: the rootfs cannot import net_dhcp under $q"
        smoke="imports checked under $q"
    else
        smoke="not run (install qemu-user-static to check imports)"
    fi
    say "$arch: $out ($(du -sh "$root" | cut -f1) rootfs, $((SECONDS - start)) s; smoke test: $smoke)"

    if [ "$create" -eq 1 ]; then
        ref="$NAME:$tag"
        if "$DOCKER" plugin inspect "$ref" >/dev/null 2>&1; then
            [ "$replace" -eq 1 ] || die "plugin $ref exists: remove it (docker plugin rm) or use --replace"
            "$DOCKER" plugin rm "$ref" >/dev/null \
                || die "cannot remove $ref: disable it first (docker plugin disable $ref)"
        fi
        "$DOCKER" plugin create "$ref" "$out" >/dev/null || die "docker plugin create $ref failed"
        say "created plugin $ref (disabled: docker plugin set / enable it)"
        if [ "$push" -eq 1 ]; then
            "$DOCKER" plugin push "$ref" >&2 || die "docker plugin push $ref failed"
            say "pushed $ref"
        fi
    fi
done
