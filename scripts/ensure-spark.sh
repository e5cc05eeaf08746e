#!/usr/bin/env bash
# What the bulk path's job needs locally, made idempotently: PySpark in .venv (the pin in
# requirements.lock), Java 17+ and the MariaDB JDBC driver (Debian's libmariadb-java, at
# /usr/share/java/mariadb-java-client.jar). Installing Debian packages needs root.
#
#   scripts/ensure-spark.sh        (make test runs it; the bulk tests' fixture too)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
JAR=/usr/share/java/mariadb-java-client.jar

die() {
    echo "ensure-spark: $*" >&2
    exit 1
}

apt_install() {
    [[ "$(id -u)" -eq 0 ]] || die "installing $* needs root; run this script as root (sudo)."
    echo "ensure-spark: installing $* ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

[[ -x $VENV/bin/python ]] || die "no $VENV: run scripts/bootstrap.sh first"

pin=$(grep -i '^pyspark==' requirements.lock || true)
[[ -n $pin ]] || die "requirements.lock pins no pyspark"
have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print("pyspark==" + m.version("pyspark"))' 2>/dev/null || true)
if [[ "$have" != "$pin" ]]; then
    echo "ensure-spark: installing $pin into $VENV ..."
    py4j=$(grep -i '^py4j==' requirements.lock || true)
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$pin" ${py4j:+"$py4j"}
fi

if ! java -version >/dev/null 2>&1; then
    apt_install openjdk-17-jre-headless
fi
if [[ ! -f $JAR ]]; then
    apt_install libmariadb-java
fi
[[ -f $JAR ]] || die "libmariadb-java is installed but $JAR is missing"
