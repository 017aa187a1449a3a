#!/usr/bin/env bash
# Validates the deployment files with real validators (no Docker engine or cluster needed):
#   deploy/Dockerfile          hadolint
#   docker-compose.yml         the Compose Specification JSON schema (check-jsonschema), and
#                              Docker Compose's own loader (`docker-compose config`)
#   deploy/k8s                 `kubectl kustomize` of the base and the example overlay, every
#                              manifest against the Kubernetes JSON schemas (kubernetes-validate,
#                              strict: unknown fields are errors) for the oldest and newest versions
#   configuration              with --sallyport BIN: every Sallyport container's environment and
#                              TOML, as compose and the overlay define them, loaded by Sallyport's
#                              own loader; the migration steps run against a scratch database
# The validators come from PyPI at the versions in deploy/validate-requirements.txt, into a venv
# cached under ~/.cache/sallyport (keyed by that file's hash).
#
# usage: deploy/validate.sh [--sallyport target/debug/sallyport] [--admin-url postgres://...]
set -euo pipefail
cd "$(dirname "$0")/.."

sallyport=""
admin_url="postgres://postgres@127.0.0.1:5432/postgres"
while [ $# -gt 0 ]; do
    case "$1" in
        --sallyport) sallyport=$2; shift 2 ;;
        --admin-url) admin_url=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

K8S_VERSIONS=(1.32.0 1.37.0)   # oldest and newest the manifests are checked against
req=deploy/validate-requirements.txt
venv="${SALLYPORT_DEPLOY_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/sallyport/deploy-venv-$(sha256sum "$req" | cut -c1-12)}"
if [ ! -f "$venv/.complete" ]; then
    echo "installing the validators into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
    touch "$venv/.complete"
fi
bin="$venv/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "hadolint $("$bin/hadolint" --version | awk '{print $NF}'), check-jsonschema $("$bin/check-jsonschema" --version | awk '{print $NF}')," \
    "docker-compose $("$bin/docker-compose" version --short), kubectl $("$bin/kubectl" version --client | awk 'NR==1{print $3}')" \
    "(kustomize $("$bin/kubectl" version --client | awk '/Kustomize/{print $3}')), kubernetes-validate $("$bin/kubernetes-validate" --version)"

echo "-- Dockerfile"
"$bin/hadolint" --no-color deploy/Dockerfile
echo "deploy/Dockerfile: hadolint found nothing"

echo "-- docker-compose.yml"
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec docker-compose.yml
# Compose's own loader: interpolation with the defaults, merge keys, the schema, references
# between services, volumes and configs. An empty env file keeps a local .env out of it.
: > "$work/empty.env"
"$bin/docker-compose" --env-file "$work/empty.env" -f docker-compose.yml config --quiet
"$bin/docker-compose" --env-file "$work/empty.env" -f docker-compose.yml config --format json > "$work/compose.json"
echo "docker-compose.yml: docker-compose config accepted it"

echo "-- Kubernetes manifests"
# The overlay reads its secrets from a git-ignored secrets.env: build a copy with generated values.
cp -r deploy/k8s "$work/k8s"
"$bin/python" - "$work/k8s/overlays/example/secrets.env" <<'EOF'
import base64, secrets, sys
password = secrets.token_urlsafe(24)
with open(sys.argv[1], "w") as f:
    f.write(f"postgres-password={password}\n")
    f.write(f"database-url=postgres://sallyport:{password}@postgres:5432/sallyport\n")
    f.write(f"encryption-key={base64.b64encode(secrets.token_bytes(32)).decode()}\n")
    f.write(f"gateway-introspection-secret={secrets.token_urlsafe(32)}\n")
EOF
for kust in base overlays/example; do
    out="$work/$(echo "$kust" | tr / -).yaml"
    "$bin/kubectl" kustomize "$work/k8s/$kust" > "$out"
    docs=$(grep -c '^kind:' "$out")
    for version in "${K8S_VERSIONS[@]}"; do
        log="$work/validate.log"
        "$bin/kubernetes-validate" --strict -k "$version" "$out" > "$log" 2>&1 || true
        # Unknown kinds are only warnings to the tool: here every line must be a pass.
        if grep -v ' passed for resource ' "$log" | grep -q .; then
            grep -v ' passed for resource ' "$log" | sed "s|$work/||" >&2
            echo "deploy/k8s/$kust: Kubernetes $version schemas rejected it" >&2
            exit 1
        fi
        passed=$(grep -c ' passed for resource ' "$log")
        if [ "$passed" != "$docs" ]; then
            echo "deploy/k8s/$kust: $docs manifests, $passed validated against $version" >&2
            exit 1
        fi
        echo "deploy/k8s/$kust: $passed manifests valid against Kubernetes ${version%.0} (strict)"
    done
done

if [ -n "$sallyport" ]; then
    echo "-- configuration, loaded by $sallyport"
    db="sallyport_deploy_check_$$"
    export PGOPTIONS="-c client_min_messages=warning"
    psql -q -d "$admin_url" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
    trap 'psql -q -d "$admin_url" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
    "$bin/python" deploy/check_config.py --sallyport "$sallyport" \
        --database-url "${admin_url%/*}/$db" \
        --compose "$work/compose.json" \
        --k8s "overlays/example=$work/overlays-example.yaml"
fi
echo "deployment files: all checks passed"
