#!/usr/bin/env bash
# Fetch Docker 28.5 from Debian forky and unpack it into a private directory: nothing is
# installed system-wide and the system's apt sources stay as they are. Idempotent; run as
# root; quiet when the directory is already complete.
#   - packages: docker.io (dockerd), docker-cli (docker), containerd, docker-compose (v2),
#     tini (docker-init); bookworm's runc (installed with docker.io by scripts/setup.sh)
#     runs them, forky's runc needs a newer libc.
#   - a private apt configuration under DIR/apt: a sources file with the mirror of the
#     system's bookworm line (default http://deb.debian.org/debian), suite forky, signed by
#     the Debian archive keyring.
#   - the pinned versions below when the mirror still offers them, else forky's current ones
#     (forky moves); the versions taken are printed and kept in DIR/root/VERSIONS.
# Environment: NET_DHCP_DOCKER28_DIR (default /var/cache/net-dhcp-docker28; tests/lab.py reads
# the same variable), NET_DHCP_DOCKER28_SUITE (default forky).
# Options: --force (fetch again), --print (print DIR/root/VERSIONS and exit).
# Layout: DIR/root/usr/sbin/dockerd, DIR/root/usr/bin/{docker,containerd,docker-compose,...}.
set -euo pipefail

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

dir="${NET_DHCP_DOCKER28_DIR:-/var/cache/net-dhcp-docker28}"
suite="${NET_DHCP_DOCKER28_SUITE:-forky}"
pins=(docker.io=28.5.2+dfsg4-5 docker-cli=28.5.2+dfsg4-5 containerd=2.1.9+ds1-5
      docker-compose=2.40.3-3 tini)
# What a complete unpack holds (checked before reuse and after unpacking).
needed=(usr/sbin/dockerd usr/bin/docker usr/bin/containerd usr/bin/containerd-shim-runc-v2
        usr/bin/docker-compose)

die() { echo "docker28.sh: $*" >&2; exit 1; }

quiet() {
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        echo "docker28.sh: failed: $*" >&2
        tail -n 40 "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

complete() {
    local root="$1" f
    [ -s "$root/VERSIONS" ] || return 1
    for f in "${needed[@]}"; do
        [ -x "$root/$f" ] || return 1
    done
}

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    --print)
        complete "$dir/root" || die "$dir/root is not complete: run $0"
        cat "$dir/root/VERSIONS"
        exit 0 ;;
    *) die "usage: $0 [--force|--print]" ;;
esac

if [ "$force" -eq 0 ] && complete "$dir/root"; then
    exit 0
fi
[ "$(id -u)" -eq 0 ] || die "fetching Docker 28.5 into $dir needs root"
for cmd in apt-get apt-cache dpkg-deb; do
    command -v "$cmd" >/dev/null 2>&1 || die "$cmd not found (this script needs Debian's apt)"
done
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -r "$keyring" ] || die "$keyring missing: apt-get install debian-archive-keyring"

# The mirror of the system's bookworm line: deb822 (*.sources) or one-line (*.list) format.
mirror_uri() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             {
                 uris = ""; ok = 0
                 for (i = 1; i <= NF; i++) {
                     if ($i ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", $i); uris = $i }
                     if ($i ~ /^Suites:/ && $i ~ /(^|[ \t])bookworm([ \t]|$)/) ok = 1
                 }
                 if (ok && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
             }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        awk '$1 == "deb" {
                 i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                 if ($(i + 1) == "bookworm") { print $i; exit }
             }' "$f"
    done
}
mirror="$(mirror_uri | head -n 1)"
mirror="${mirror:-http://deb.debian.org/debian}"

apt="$dir/apt"
mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
cat >"$apt/$suite.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite
Components: main
Signed-By: $keyring
EOF
opts=(-o "Dir::Etc::sourcelist=$apt/$suite.sources" -o "Dir::Etc::sourceparts=-"
      -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
      -o "APT::Sandbox::User=root")
quiet apt-get "${opts[@]}" update

# Each pin if the suite offers it, else the suite's current version.
want=()
notes=()
for pin in "${pins[@]}"; do
    pkg="${pin%%=*}"
    ver=""
    [ "$pin" != "$pkg" ] && ver="${pin#*=}"
    offered="$(apt-cache "${opts[@]}" madison "$pkg" | awk -F'|' '{ gsub(/ /, "", $2); print $2 }')"
    [ -n "$offered" ] || die "$suite offers no $pkg (mirror $mirror)"
    if [ -n "$ver" ] && grep -qxF "$ver" <<<"$offered"; then
        want+=("$pkg=$ver")
    else
        current="$(head -n 1 <<<"$offered")"
        want+=("$pkg=$current")
        [ -n "$ver" ] && notes+=("$pkg: pinned $ver is gone from $suite, took $current")
    fi
done

rm -f "$apt/debs/"*.deb
(cd "$apt/debs" && quiet apt-get "${opts[@]}" download "${want[@]}")

stage="$dir/root.new"
rm -rf "$stage"
mkdir -p "$stage"
for deb in "$apt/debs/"*.deb; do
    dpkg-deb -x "$deb" "$stage" || die "dpkg-deb -x $deb failed"
done
{
    echo "# Docker from Debian $suite ($mirror), unpacked by scripts/docker28.sh"
    printf '%s\n' "${want[@]}"
} >"$stage/VERSIONS"
complete "$stage" || die "unpacked packages lack one of: ${needed[*]} (see $stage)"
"$stage/usr/sbin/dockerd" --version >/dev/null 2>&1 \
    || die "$stage/usr/sbin/dockerd does not run here (libc too old?)"
rm -rf "$dir/root"
mv "$stage" "$dir/root"
rm -f "$apt/debs/"*.deb

for n in "${notes[@]+"${notes[@]}"}"; do
    echo "docker28.sh: $n" >&2
done
echo "docker28.sh: Docker from $suite in $dir/root: ${want[*]}"
