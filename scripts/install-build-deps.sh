#!/usr/bin/env bash
# Installs what building and testing pinlb needs beyond Rust (cmake, a C compiler; patch for
# `make vendor-check`; nginx, which `pinlb compare` and its tests run beside pinlb; openssl,
# curl and h2load, the HTTPS tests' certificate maker and clients; pebble and
# pebble-challtestsrv, the ACME tests' CA and DNS; rustup's llvm-tools, for the release
# build's profile) when it is missing and
# this user can (root with apt-get); otherwise says exactly what to install.
# `install-build-deps.sh callgrind` adds what `make callgrind` needs (valgrind);
# `install-build-deps.sh callgrind-cache` adds wrk too, for `make callgrind-cache`.
set -euo pipefail

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v cc >/dev/null || missing+=(gcc)
command -v patch >/dev/null || missing+=(patch)
# Debian puts nginx in /usr/sbin, which a non-root PATH may leave out.
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
case "${1:-}" in
    callgrind) command -v valgrind >/dev/null || missing+=(valgrind) ;;
    callgrind-cache)
        command -v valgrind >/dev/null || missing+=(valgrind)
        command -v wrk >/dev/null || missing+=(wrk)
        ;;
esac
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v h2load >/dev/null || missing+=(nghttp2-client)
{ command -v pebble >/dev/null && command -v pebble-challtestsrv >/dev/null; } || missing+=(pebble)
command -v cargo >/dev/null || { echo "pinlb: cargo not found: install Rust from https://rustup.rs" >&2; exit 1; }
# llvm-profdata, for the profile-guided release build (scripts/build-release.sh).
if [ ! -x "$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-profdata" ]; then
    command -v rustup >/dev/null && rustup component add llvm-tools >/dev/null 2>&1 || true
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "pinlb: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
    echo "pinlb: building needs ${missing[*]}; install them, e.g.: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
