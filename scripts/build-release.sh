#!/usr/bin/env bash
# The release build, profile-guided (PGO): how `make build`, the benches and the container
# image build pinlb.
#
#   scripts/build-release.sh [CARGO BUILD ARGS...]     e.g. --example demo_backend
#   scripts/build-release.sh --instrumented-only        step 1 alone (the image's dependency layer)
#
# 1. An instrumented pinlb (`-Cprofile-generate`) and its training run, examples/pgo_train,
#    are built under $TARGET/pgo-instrumented (a target folder of their own, so that neither
#    build throws away the other's compiled crates).
# 2. The training run sends the instrumented pinlb the traffic it exists for (keep-alive,
#    pinned, POST, new connections, HTTPS, HTTP/2, websockets) and stops it; its counts are
#    merged into $TARGET/pgo/pinlb.profdata with the toolchain's llvm-profdata (rustup's
#    llvm-tools component). It runs again only when the instrumented pinlb or the training
#    run changed; a new profile rebuilds every crate in step 3 (rustc tracks the file).
# 3. pinlb is built into $TARGET/release with `-Cprofile-use`: LLVM lays out, inlines and
#    splits hot from cold code by what the run measured. On the bench's proxied request this
#    takes a quarter off the instructions and a third off the instruction-cache misses
#    (README, Performance).
#
# PGO=off builds without a profile (one plain `cargo build --release`, half the time).
# RUSTFLAGS set by the caller are kept. Needs nothing beyond the build's own needs but
# llvm-tools, which this script adds with rustup when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
mkdir -p "$target"
target=$(cd "$target" && pwd)
cargo=${CARGO:-cargo}
build=(build --release --locked --bin pinlb)
instrumented_only=false
if [ "${1:-}" = --instrumented-only ]; then instrumented_only=true; shift; fi

if [ "${PGO:-on}" = off ]; then
    exec "$cargo" "${build[@]}" "$@"
fi
[ "${PGO:-on}" = on ] || { echo "build-release: PGO is on or off, not '$PGO'" >&2; exit 2; }

host=$(rustc -vV | sed -n 's/^host: //p')
profdata_tool="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata_tool" ]; then
    echo "build-release: adding rustup's llvm-tools (llvm-profdata) for the profile-guided build"
    rustup component add llvm-tools >/dev/null 2>&1 || true
    [ -x "$profdata_tool" ] || {
        echo "build-release: $profdata_tool is missing and rustup could not add llvm-tools;" \
            "install it (rustup component add llvm-tools) or build without a profile: PGO=off" >&2
        exit 1
    }
fi

instrumented=$target/pgo-instrumented
pgo=$target/pgo
profile=$pgo/pinlb.profdata

echo "build-release: 1/3 instrumented pinlb and its training run"
CARGO_TARGET_DIR=$instrumented RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$pgo/unused" \
    "$cargo" "${build[@]}" --example pgo_train
$instrumented_only && exit 0

trainer=$instrumented/release/examples/pgo_train
if [ -f "$profile" ] && [ "$profile" -nt "$instrumented/release/pinlb" ] && [ "$profile" -nt "$trainer" ]; then
    echo "build-release: 2/3 $profile is newer than the instrumented pinlb and its training run: kept"
else
    echo "build-release: 2/3 training run"
    rm -rf "$pgo/run"
    # The training run's own counts go to a file of their own; it points pinlb's at run/profile.
    LLVM_PROFILE_FILE="$pgo/run/pgo_train-%p.profraw" \
        timeout 10m "$trainer" "$instrumented/release/pinlb" "$pgo/run"
    "$profdata_tool" merge -o "$profile.new" "$pgo"/run/profile/*.profraw
    mv "$profile.new" "$profile"
fi

echo "build-release: 3/3 pinlb built with the profile"
# With the training run again: building an example unifies the dev-dependencies' features
# into the shared crates, and a profile only matches code built with the same features as
# the instrumented build (without it most of the gain is lost: 39,300 instead of
# 31,900 instructions per request).
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$profile" "$cargo" "${build[@]}" --example pgo_train "$@"
