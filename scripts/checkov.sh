#!/usr/bin/env bash
# checkov on template.yaml, from its own virtualenv (.venv-tools): its dependencies would
# fight aws-sam-cli's pins in .venv. Exits non-zero on any failed check; a suppression
# lives next to its resource in template.yaml (Metadata: checkov: skip: id + comment).
set -euo pipefail
cd "$(dirname "$0")/.."

CHECKOV_VERSION=3.3.30
VENV=.venv-tools
PY=$(command -v python3.11 || command -v python3)

if [[ "$($VENV/bin/checkov --version 2>/dev/null)" != "$CHECKOV_VERSION" ]]; then
    echo "checkov: installing checkov==$CHECKOV_VERSION into $VENV ..." >&2
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION" 2>&1 |
        { grep -v "^WARNING: Location" || true; }
fi

# --skip-download: no call to the vendor's API (CI has no network beyond package registries).
exec "$VENV/bin/checkov" --skip-download --quiet --compact --framework cloudformation \
    --file template.yaml "$@"
