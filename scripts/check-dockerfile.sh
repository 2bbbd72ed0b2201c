#!/usr/bin/env bash
# Checks that the container image builds and serves (run by .ci/run).
#
# Every source of the runtime stage's COPY must exist. Then, by the first that works:
#   docker  a docker engine answers (`docker info`): the real `docker build`;
#   podman  podman with runc, after scripts/container-base.sh has made the base images:
#           the real build, as `podman build`;
#   staged  neither: exactly the paths the build stage COPYs (less .dockerignore) are staged
#           in an empty folder, where `cargo build --locked --offline --bin pinlb` must pass.
# After a real build the image is run (`-p 127.0.0.1:PORT:80`): pinlb must answer on PORT with
# the default page of contrib/docker/conf.d/default.conf, and the image's HEALTHCHECK command
# must exit 0 inside the container; then the container is removed. Every step has a deadline.
#
#   scripts/check-dockerfile.sh [docker|podman|staged]    (default: the first that works)
#   CHECK_IMAGE_PORT=18480 (default: a free port)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check-dockerfile: $*"; }
fail() { echo "check-dockerfile: FAILED: $*" >&2; exit 1; }
image=localhost/pinlb:check
work=$(mktemp -d /tmp/pinlb-check-dockerfile.XXXXXX)
cid=""
cleanup() {
    if [ -n "$cid" ]; then timeout 60 "${engine[@]}" rm -f "$cid" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The Dockerfile's COPY sources, stage by stage (`build` for every stage before the last, `runtime`
# for the last), its build stage's WORKDIR, and its HEALTHCHECK command as JSON.
python3 - Dockerfile "$work" <<'PY'
import json, shlex, sys
lines, cur = [], ""
for raw in open(sys.argv[1]):
    s = raw.rstrip("\n")
    if not cur and s.lstrip().startswith("#"):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    cur += s
    if cur.strip():
        lines.append(cur.strip())
    cur = ""
stages = []
for line in lines:
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "FROM":
        stages.append({"workdir": "/", "copies": [], "health": None})
    elif word == "WORKDIR":
        stages[-1]["workdir"] = rest.strip()
    elif word in ("COPY", "ADD"):
        rest = rest.strip()
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        paths = [a for a in args if not a.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        stages[-1]["copies"].append((paths[:-1], paths[-1]))
    elif word == "HEALTHCHECK" and " CMD " in f" {rest} ":
        cmd = rest[f" {rest} ".index(" CMD ") + 3:].strip()
        stages[-1]["health"] = json.loads(cmd) if cmd.startswith("[") else ["/bin/sh", "-c", cmd]
out = sys.argv[2]
with open(f"{out}/copies", "w") as f:
    for i, st in enumerate(stages):
        kind = "runtime" if i == len(stages) - 1 else "build"
        for srcs, dest in st["copies"]:
            d = dest if dest.startswith("/") else st["workdir"].rstrip("/") + "/" + dest
            for s in srcs:
                f.write(f"{kind}\t{s}\t{d}\t{len(srcs)}\n")
with open(f"{out}/health", "w") as f:
    f.write(json.dumps(stages[-1]["health"] or []))
with open(f"{out}/workdir", "w") as f:
    f.write(stages[-2]["workdir"] if len(stages) > 1 else stages[-1]["workdir"])
PY

missing=0
while IFS=$'\t' read -r kind src _; do
    if [ ! -e "$src" ]; then echo "check-dockerfile: the $kind stage copies $src, which does not exist" >&2; missing=1; fi
done <"$work/copies"
[ $missing = 0 ] || fail "COPY sources missing"
say "every COPY source exists ($(grep -c '' "$work/copies") paths)"

choice=${1:-}
engine=()
if [ -z "$choice" ] || [ "$choice" = docker ]; then
    if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
        choice=docker
    elif [ "$choice" = docker ]; then
        fail "no docker engine answers"
    fi
fi
if [ -z "$choice" ] || [ "$choice" = podman ]; then
    if { command -v podman >/dev/null || [ "$(id -u)" = 0 ]; } && scripts/container-base.sh; then
        choice=podman
    elif [ "$choice" = podman ]; then
        fail "podman or its base images are not available"
    fi
fi
choice=${choice:-staged}

staged_build() {
    say "staged: the build stage's COPY paths in an empty folder, built offline"
    python3 - "$work" <<'PY'
import fnmatch, os, shutil, sys
work = sys.argv[1]
root = os.path.join(work, "stage")
ignore = []
if os.path.exists(".dockerignore"):
    ignore = [l.strip().strip("/") for l in open(".dockerignore") if l.strip() and not l.startswith("#")]
def ignored(rel):
    parts = rel.split("/")
    return any(fnmatch.fnmatch("/".join(parts[:i]), p) for p in ignore for i in range(1, len(parts) + 1))
def copy(src, dest):
    if os.path.isdir(src):
        os.makedirs(dest, exist_ok=True)
        for name in sorted(os.listdir(src)):
            rel = os.path.normpath(os.path.join(src, name))
            if not ignored(rel):
                copy(rel, os.path.join(dest, name))
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(src, dest)
for line in open(os.path.join(work, "copies")):
    kind, src, dest, count = line.rstrip("\n").split("\t")
    if kind != "build":
        continue
    target = root + dest
    if dest.endswith("/") or int(count) > 1:
        if not os.path.isdir(src):
            target = os.path.join(target, os.path.basename(src))
    copy(os.path.normpath(src), target)
PY
    local dir
    dir="$work/stage$(cat "$work/workdir")"
    echo "check-dockerfile: staged in $dir: $(ls -A "$dir" | tr '\n' ' ')"
    # A target folder of its own: the staged workspace must not overwrite this one's binaries.
    (cd "$dir" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$OLDPWD/target}/check-dockerfile" \
        timeout 40m cargo build --locked --offline --bin pinlb) \
        || fail "what the build stage copies does not build on its own (cargo's error is above; crates missing offline: \`cargo fetch --locked\`)"
    say "staged build passed"
}

real_build() {
    local build=("$@")
    say "$choice: building the image"
    local start=$SECONDS
    timeout 50m "${build[@]}" -t "$image" . || fail "the image does not build"
    say "$choice: image built in $((SECONDS - start)) s"
    local inspect
    inspect=$(timeout 60 "${engine[@]}" image inspect "$image") || fail "cannot inspect the image"
    grep -q -- '--healthcheck' <<<"$inspect" \
        || fail "the image carries no HEALTHCHECK (podman keeps it with --format docker only)"

    local port=${CHECK_IMAGE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    cid=$(timeout 120 "${run[@]}" -d -p "127.0.0.1:$port:80" "$image") || fail "the image does not start"
    say "$choice: container ${cid:0:12} on 127.0.0.1:$port"
    local deadline=$((SECONDS + 60)) body=""
    until body=$(curl -sS --max-time 2 -D "$work/headers" "http://127.0.0.1:$port/" 2>/dev/null) \
        && grep -q '^pinlb is running' <<<"$body"; do
        if [ $SECONDS -ge $deadline ] || [ "$(timeout 30 "${engine[@]}" inspect -f '{{.State.Running}}' "$cid")" != true ]; then
            timeout 30 "${engine[@]}" logs "$cid" 2>&1 | tail -20 >&2 || true
            fail "pinlb did not answer with its default page on 127.0.0.1:$port within 60 s (last: ${body:-no answer})"
        fi
        sleep 0.2
    done
    say "$choice: pinlb answered: $(head -1 "$work/headers" | tr -d '\r'): $body"

    local health=()
    mapfile -t health < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))))' "$work/health")
    [ ${#health[@]} -gt 0 ] || fail "the Dockerfile has no HEALTHCHECK CMD"
    deadline=$((SECONDS + 30))
    until timeout 10 "${engine[@]}" exec "$cid" "${health[@]}"; do
        [ $SECONDS -lt $deadline ] || fail "the HEALTHCHECK command (${health[*]}) did not pass within 30 s"
        sleep 0.2
    done
    say "$choice: HEALTHCHECK command passed: ${health[*]}"
}

# Builds use the host's network (cargo and apt-get reach their registries from there); the
# container that is run gets the engine's default network, for its published port.
# podman's default limits can exceed what may be set here (runc then fails to start the
# container): open files as this shell has them, processes as many as an image needs.
limits=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
case "$choice" in
docker)
    engine=(docker)
    run=(docker run)
    real_build docker build --network host
    ;;
podman)
    # runc: crun, podman's default on Debian, fails on hosts with hybrid cgroups. The docker
    # image format keeps HEALTHCHECK (the OCI format has no place for it).
    engine=(podman --runtime runc)
    # --no-healthcheck: podman runs the HEALTHCHECK through systemd timers, which a machine
    # without systemd lacks; the command is run by hand after the start instead.
    run=(podman --runtime runc run --no-healthcheck "${limits[@]}")
    real_build podman --runtime runc build --format docker --network host "${limits[@]}"
    ;;
staged) staged_build ;;
*) fail "unknown engine $choice (docker, podman or staged)" ;;
esac
say "passed ($choice)"
