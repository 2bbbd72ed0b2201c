#!/usr/bin/env bash
# `make check-configs`: every config the repository ships is one pinlb takes, and the
# deployment examples are valid: conf/* and the Kubernetes ConfigMap's nginx.conf and the
# ECS pinlb.json with `pinlb -t`, the image's JSON with --print-config, the Kubernetes
# manifests with kubernetes-validate (installed from PyPI when missing), the ECS task
# definition and target group as JSON with the fields ECS needs.
set -euo pipefail
cd "$(dirname "$0")/.."
pinlb="${CARGO_TARGET_DIR:-target}/debug/pinlb"

for f in conf/* examples/ecs/pinlb.json; do
    "$pinlb" -t -c "$f"
done
for f in contrib/docker/*.json; do
    "$pinlb" --print-config -c "$f" >/dev/null
    echo "pinlb: $f parses"
done

if ! python3 -c 'import kubernetes_validate, yaml' 2>/dev/null; then
    echo "pinlb: installing kubernetes-validate"
    python3 -m pip install -q kubernetes-validate
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import sys, yaml
with open("examples/kubernetes/configmap.yaml") as f:
    cm = yaml.safe_load(f)
with open(sys.argv[1] + "/nginx.conf", "w") as out:
    out.write(cm["data"]["nginx.conf"])
PY
"$pinlb" -t -c "$tmp/nginx.conf"
echo "pinlb: examples/kubernetes/configmap.yaml nginx.conf is valid"
python3 -m kubernetes_validate --strict examples/kubernetes/*.yaml

python3 - <<'PY'
import json
task = json.load(open("examples/ecs/task-definition.json"))
assert task["family"] and task["containerDefinitions"], "family and containerDefinitions"
for c in task["containerDefinitions"]:
    for key in ("name", "image", "portMappings", "healthCheck"):
        assert key in c, f"container {c.get('name')} has no {key}"
group = json.load(open("examples/ecs/target-group.json"))
assert group["HealthCheckPath"] == "/healthz", "the target group asks pinlb's /healthz"
print("pinlb: examples/ecs task definition and target group are valid")
PY
