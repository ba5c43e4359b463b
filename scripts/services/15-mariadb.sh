# MariaDB for tests/integration/mysql.rs and benches/mysql.rs: a private server
# owned by the mysql OS user on a free loopback port (never the system one),
# with a password-authenticated user for drdrill to dump from. drdrill's own
# throwaway servers use the same programs (mariadb-install-db, mariadbd).
# Sourced by scripts/test; uses free_port, cleanups and DRDRILL_TEST_ROOT from it.

if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ] || ! command -v mariadb-dump >/dev/null; then
    # The package's post-install starts the system server; keep it from doing so.
    policy=/usr/sbin/policy-rc.d
    had_policy=no
    if [ -e "$policy" ]; then had_policy=yes; else printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null; }
    [ "$had_policy" = yes ] || rm -f "$policy"
fi
my_dir="$DRDRILL_TEST_ROOT/mariadb"
mkdir -p "$my_dir" && chown mysql: "$my_dir" && chmod 700 "$my_dir"
DRDRILL_TEST_MYSQL_PORT="$(free_port)"
runuser -u mysql -- mariadb-install-db --no-defaults --auth-root-authentication-method=socket \
    --datadir="$my_dir/data" --skip-test-db >"$my_dir/install.log" 2>&1
runuser -u mysql -- /usr/sbin/mariadbd --no-defaults --datadir="$my_dir/data" --port="$DRDRILL_TEST_MYSQL_PORT" \
    --bind-address=127.0.0.1 --socket="$my_dir/sock" --pid-file="$my_dir/pid" --log-error="$my_dir/log" \
    --innodb-flush-log-at-trx-commit=2 --skip-log-bin >/dev/null 2>&1 &
for _ in $(seq 1 300); do
    [ -S "$my_dir/sock" ] && mariadb --no-defaults -S "$my_dir/sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
done
cleanups+=("kill \$(cat '$my_dir/pid') 2>/dev/null; sleep 1")
DRDRILL_TEST_MYSQL_PASSWORD="drill-$RANDOM$RANDOM"
mariadb --no-defaults -S "$my_dir/sock" -u root -e \
    "CREATE USER 'drill'@'127.0.0.1' IDENTIFIED BY '$DRDRILL_TEST_MYSQL_PASSWORD'; GRANT ALL ON *.* TO 'drill'@'127.0.0.1' WITH GRANT OPTION;"
DRDRILL_TEST_MYSQL_SOCKET="$my_dir/sock"
export DRDRILL_TEST_MYSQL_PORT DRDRILL_TEST_MYSQL_PASSWORD DRDRILL_TEST_MYSQL_SOCKET
export DRDRILL_TEST_MYSQL_HOST=127.0.0.1 DRDRILL_TEST_MYSQL_USER=drill
