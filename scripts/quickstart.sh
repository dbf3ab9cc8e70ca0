#!/usr/bin/env bash
# The main job: a real pipeline on the embedded default log.
#
# Creates a sample shop database in the local PostgreSQL, runs
# examples/postgres-to-redis.yaml (PostgreSQL -> Tributary's log -> Redis)
# with the release binary, shows a cached row, changes the table, and shows
# the cache following. Needs the services of scripts/services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

DB=tributary_quickstart
export PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=$DB
export TRIBUTARY_DATA=$PWD/tributary-data/quickstart
PIPELINE=examples/postgres-to-redis.yaml
say() { printf '\n== %s\n' "$*"; }

cargo build --release --locked -p tributary
BIN=target/release/tributary

say "sample data: database $DB"
psql -X -q -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'tributary_shop'" >/dev/null
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
psql -X -q -d postgres -c "CREATE DATABASE $DB"
psql -X -q -v ON_ERROR_STOP=1 <<'SQL'
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, city text, since date NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL REFERENCES customers, total numeric(10,2) NOT NULL, placed timestamptz NOT NULL DEFAULT now());
INSERT INTO customers SELECT g, 'customer ' || g, (ARRAY['Lisbon','Oslo','Quito'])[1 + g % 3], DATE '2024-01-01' + g FROM generate_series(1, 1000) g;
INSERT INTO orders (id, customer, total) SELECT g, 1 + g % 1000, (g % 500) * 1.25 FROM generate_series(1, 5000) g;
SQL
rm -rf "$TRIBUTARY_DATA"
redis-cli --scan --pattern 'shop:*' | xargs -r redis-cli DEL >/dev/null

say "validate $PIPELINE"
$BIN validate $PIPELINE

say "run $PIPELINE"
$BIN --log-level warn run $PIPELINE &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
wait_for() { # seconds, command...
    local n=$1; shift
    for _ in $(seq $((n * 10))); do "$@" && return 0; sleep 0.1; done
    echo "timed out waiting for: $*" >&2; return 1
}
cached() { redis-cli --scan --pattern "shop:public.$1:*" | wc -l; }
count_is() { test "$(cached "$1")" -eq "$2"; }
city_is() { test "$(redis-cli HGET "shop:public.customers:$1" city)" = "$2"; }
wait_for 60 count_is customers 1000
wait_for 60 count_is orders 5000
echo "Redis holds $(cached customers) customers and $(cached orders) orders"
say "redis-cli HGETALL shop:public.customers:7"
redis-cli HGETALL shop:public.customers:7 | paste - -

say "UPDATE customers SET city = 'Nairobi' WHERE id = 7; DELETE FROM orders WHERE customer = 7"
psql -X -q -c "UPDATE customers SET city = 'Nairobi' WHERE id = 7; DELETE FROM orders WHERE customer = 7"
wait_for 30 city_is 7 Nairobi
wait_for 30 count_is orders 4995
redis-cli HGETALL shop:public.customers:7 | paste - -
echo "orders left in Redis: $(cached orders)"

say "stop (SIGTERM): sources stop, the log is flushed, offsets are committed"
kill -TERM $PID
wait $PID
trap - EXIT
# The demo's slot would hold WAL for ever: drop it (running the pipeline
# again needs the quickstart again).
psql -X -q -d postgres -c "SELECT pg_drop_replication_slot('tributary_shop')" >/dev/null
echo "quickstart: $(cached customers) customers, $(cached orders) orders in Redis, data in $TRIBUTARY_DATA"
