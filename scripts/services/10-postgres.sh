# PostgreSQL for tests/postgres.rs: a private throwaway cluster owned by the
# postgres OS user on a free loopback port (never the system cluster), with a
# password-authenticated role for drdrill to back up from.
# Sourced by scripts/test; uses free_port, cleanups and DRDRILL_TEST_ROOT from it.

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/pg_ctl" ]; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
DRDRILL_TEST_PG_BIN="$(pg_bin)"
pg_dir="$DRDRILL_TEST_ROOT/postgres"
mkdir -p "$pg_dir" && chown postgres: "$pg_dir" && chmod 700 "$pg_dir"
DRDRILL_TEST_PG_PORT="$(free_port)"
runuser -u postgres -- "$DRDRILL_TEST_PG_BIN/initdb" -D "$pg_dir/data" -A trust -U postgres \
    --no-sync >/dev/null
# Password auth on TCP (so wrong passwords are really refused), peer on the socket.
cat > "$pg_dir/data/pg_hba.conf" <<HBA
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
runuser -u postgres -- "$DRDRILL_TEST_PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $DRDRILL_TEST_PG_PORT -c listen_addresses=127.0.0.1 -k $pg_dir -c fsync=off" start >/dev/null
cleanups+=("runuser -u postgres -- '$DRDRILL_TEST_PG_BIN/pg_ctl' -D '$pg_dir/data' -m immediate stop >/dev/null")
DRDRILL_TEST_PG_PASSWORD="drill-$RANDOM$RANDOM"
runuser -u postgres -- "$DRDRILL_TEST_PG_BIN/psql" -X -q -h "$pg_dir" -p "$DRDRILL_TEST_PG_PORT" -U postgres \
    -c "CREATE ROLE drill LOGIN SUPERUSER PASSWORD '$DRDRILL_TEST_PG_PASSWORD'" >/dev/null
export DRDRILL_TEST_PG_BIN DRDRILL_TEST_PG_PORT DRDRILL_TEST_PG_PASSWORD
export DRDRILL_TEST_PG_HOST=127.0.0.1 DRDRILL_TEST_PG_USER=drill
