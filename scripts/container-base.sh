#!/usr/bin/env bash
# A container engine for checking the image where no docker engine runs: podman with runc,
# and the two images the Dockerfile starts from, made locally when missing so that no image
# registry is needed:
#   debian:bookworm-slim  a minimal debootstrap of Debian bookworm;
#   rust:1-bookworm       the same plus a C toolchain, cmake, this machine's Rust toolchain
#                         (`rustc --print sysroot`; CARGO_HOME=/usr/local/cargo as in the
#                         official image) and the certificate authorities it adds locally.
# Idempotent; the first run takes a few minutes. Installs podman, runc and debootstrap with
# apt-get when they are missing and this user is root.
#
#   scripts/container-base.sh && podman --runtime runc build --format docker --network host .
set -euo pipefail

need=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "container-base: installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "container-base: needs ${need[*]} (as root: apt-get install -y ${need[*]})" >&2
        exit 1
    fi
fi
[ "$(id -u)" = 0 ] || { echo "container-base: needs root (debootstrap, chroot)" >&2; exit 1; }

# runc: crun, podman's default on Debian, fails on hosts with hybrid cgroups.
pod() { podman --runtime runc "$@"; }
debian=docker.io/library/debian:bookworm-slim
rust=docker.io/library/rust:1-bookworm
have() { pod image exists "$1"; }
if have "$debian" && have "$rust"; then
    echo "container-base: $debian and $rust are there"
    exit 0
fi

work=$(mktemp -d /tmp/pinlb-container-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
# The mirror apt uses here; debootstrap's default when none is configured.
mirror=$({ sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources
    sed -n 's/^deb *\(http[^ ]*\/debian\) .*/\1/p' /etc/apt/sources.list; } 2>/dev/null | head -1 || true)
echo "container-base: debootstrap bookworm ${mirror:+from $mirror}"
debootstrap --variant=minbase bookworm "$root" ${mirror:+"$mirror"} >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

if ! have "$debian"; then
    tar -C "$root" -c . | pod import -q --change 'CMD ["bash"]' - "$debian" >/dev/null
    echo "container-base: made $debian"
fi

if ! have "$rust"; then
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends gcc g++ make cmake perl pkg-config libc6-dev ca-certificates \
        && rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/*' >"$work/apt.log" 2>&1 \
        || { tail -20 "$work/apt.log" >&2; exit 1; }
    # The certificate authorities this machine adds to Debian's (a TLS-inspecting proxy's, say),
    # so that cargo in the image reaches the crate registry as it does here.
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
        chroot "$root" update-ca-certificates >/dev/null 2>&1
    fi
    : >"$root/etc/resolv.conf"
    sysroot=$(rustc --print sysroot)
    mkdir -p "$root/usr/local/rust" "$root/usr/local/cargo/bin"
    tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$root/usr/local/rust" -x
    for tool in "$root"/usr/local/rust/bin/*; do
        ln -s "/usr/local/rust/bin/$(basename "$tool")" "$root/usr/local/cargo/bin/"
    done
    tar -C "$root" -c . | pod import -q \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' --change 'CMD ["bash"]' \
        - "$rust" >/dev/null
    echo "container-base: made $rust ($(rustc --version))"
fi
