#!/usr/bin/env bash
# Make sure a local MariaDB is installed, running and reachable over TCP, and write the
# connection URL Sluice should use to a file (default .sluice/mysql.env).
#
#   scripts/ensure-mariadb.sh [ENV_FILE]
#
# Idempotent: every step checks first and does nothing when already done. Installing or
# starting the server needs root (Debian). The password is written only to ENV_FILE (mode 600).
set -euo pipefail

ENV_FILE="${1:-.sluice/mysql.env}"
HOST=127.0.0.1
PORT=3306
MARIADBD=/usr/sbin/mariadbd
WAIT_SECONDS=60
SLUICE_USER=sluice

die() {
    echo "ensure-mariadb: $*" >&2
    exit 1
}

need_root() {
    [[ "$(id -u)" -eq 0 ]] || die "$1 needs root; run this script as root (sudo)."
}

# mariadb-admin ping exits 0 whenever the server answers, even with "access denied".
ping_socket() { mariadb-admin --connect-timeout=2 --silent ping >/dev/null 2>&1; }
ping_tcp() {
    mariadb-admin --no-defaults --protocol=TCP -h"$HOST" -P"$PORT" --connect-timeout=2 \
        --silent ping >/dev/null 2>&1
}

# --no-defaults: the URL we write carries no password, so a ~/.my.cnf one must not help.
root_tcp() { mariadb --no-defaults --protocol=TCP -h"$HOST" -P"$PORT" -uroot -N -B "$@"; }
# Root through the unix socket: what a fresh Debian install allows (unix_socket auth).
root_socket() { mariadb -uroot -N -B "$@"; }
# MYSQL_PWD keeps the password out of the process list.
sluice_tcp() {
    MYSQL_PWD="$1" mariadb --no-defaults --protocol=TCP -h"$HOST" -P"$PORT" \
        -u"$SLUICE_USER" -N -B -e 'SELECT 1' >/dev/null 2>&1
}

# a) Install.
if [[ ! -x "$MARIADBD" ]]; then
    need_root "Installing mariadb-server"
    echo "Installing mariadb-server ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
fi

# b) Start.
if ! ping_socket && ! ping_tcp; then
    need_root "Starting MariaDB"
    echo "Starting MariaDB ..."
    mkdir -p /run/mysqld
    chown mysql:mysql /run/mysqld
    # Without --user=mysql, mariadbd started as root refuses to run.
    start-stop-daemon --start --oknodo --background --exec "$MARIADBD" -- --user=mysql
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        ping_socket && break
        sleep 1
    done
    ping_socket || die "MariaDB did not answer within ${WAIT_SECONDS}s. Run '$MARIADBD --user=mysql' in the foreground to see why."
fi
for ((i = 0; i < 10; i++)); do
    ping_tcp && break
    sleep 1
done
ping_tcp || die "MariaDB is running but not reachable over TCP at $HOST:$PORT; check bind-address, port and skip-networking in its configuration."

# c) Decide who connects.
if root_tcp -e 'SELECT 1' >/dev/null 2>&1; then
    account=root
    url="mysql://root@$HOST:$PORT"
    admin=(root_tcp)
else
    root_socket -e 'SELECT 1' >/dev/null 2>&1 ||
        die "root has no empty-password TCP access and cannot log in through the unix socket either; run this as the unix root user, or create a user yourself and write SLUICE_MYSQL_URL to $ENV_FILE."
    account=$SLUICE_USER
    admin=(root_socket)
    # Keep a password that still works, so a re-run does not break other shells' sessions.
    password=""
    if [[ -f "$ENV_FILE" ]]; then
        password="$(sed -n "s|^SLUICE_MYSQL_URL=mysql://$SLUICE_USER:\([0-9a-f]\{32\}\)@$HOST:$PORT\$|\1|p" "$ENV_FILE")"
    fi
    if [[ -z "$password" ]] || ! sluice_tcp "$password"; then
        if command -v openssl >/dev/null; then
            password="$(openssl rand -hex 16)"
        else
            password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
        fi
        [[ "$password" =~ ^[0-9a-f]{32}$ ]] || die "could not generate a random password"
        # Hex only, so it is safe inside the SQL literal and the URL. Sent on stdin, not argv.
        root_socket <<SQL
CREATE USER IF NOT EXISTS '$SLUICE_USER'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER '$SLUICE_USER'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$SLUICE_USER'@'localhost' IDENTIFIED BY '$password';
ALTER USER '$SLUICE_USER'@'localhost' IDENTIFIED BY '$password';
-- Tests create and drop their own databases.
GRANT ALL PRIVILEGES ON *.* TO '$SLUICE_USER'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '$SLUICE_USER'@'localhost' WITH GRANT OPTION;
SQL
        sluice_tcp "$password" || die "created user '$SLUICE_USER' but it cannot log in over TCP at $HOST:$PORT."
    fi
    url="mysql://$SLUICE_USER:$password@$HOST:$PORT"
fi

# Loaders use LOAD DATA LOCAL INFILE. SET GLOBAL does not survive a server restart, which
# is why this runs on every call.
if [[ "$("${admin[@]}" -e 'SELECT @@GLOBAL.local_infile')" != "1" ]]; then
    "${admin[@]}" -e 'SET GLOBAL local_infile = 1'
fi

# d) Write the URL (mode 600, replaced atomically).
mkdir -p "$(dirname "$ENV_FILE")"
tmp="$(mktemp "$ENV_FILE.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
chmod 600 "$tmp"
printf 'SLUICE_MYSQL_URL=%s\n' "$url" >"$tmp"
mv -f "$tmp" "$ENV_FILE"
trap - EXIT

echo "MariaDB ready at $HOST:$PORT as $account (URL in $ENV_FILE)"
