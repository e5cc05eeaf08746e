#!/usr/bin/env bash
# Everything `make demo` and `make test` need, made idempotently: the virtualenv with the
# pinned dependencies (requirements.lock), the sluice package installed into it, and a
# running MariaDB with the connection URL in .sluice/mysql.env.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PY=$(command -v python3.11 || command -v python3 || true)
[[ -n $PY ]] || { echo "bootstrap: Python 3.11+ is needed (python3.11 or python3 on PATH)" >&2; exit 1; }
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    { echo "bootstrap: $PY is older than Python 3.11" >&2; exit 1; }

stamp=$(cat requirements.lock pyproject.toml | sha256sum | cut -c1-16)
if [[ ! -x $VENV/bin/python || "$(cat $VENV/.stamp 2>/dev/null)" != "$stamp" ]]; then
    echo "bootstrap: creating $VENV with the pinned dependencies (requirements.lock) ..."
    rm -rf "$VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r requirements.lock
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
    echo "$stamp" > "$VENV/.stamp"
fi

scripts/ensure-mariadb.sh .sluice/mysql.env
