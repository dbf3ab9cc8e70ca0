#!/usr/bin/env bash
# Make sure the services Tributary's tests talk to are installed, configured
# for change data capture, running and reachable:
#
#   PostgreSQL 15 (cluster main)  127.0.0.1:5432  wal_level=logical, trust auth
#   MariaDB                       127.0.0.1:3306  row binlog with full metadata, GTID
#   Redis                         127.0.0.1:6379
#   NATS with JetStream           127.0.0.1:4222
#
# Idempotent: a second run changes nothing and restarts nothing. Runs as root on
# Debian 12, with or without the services preinstalled. There is no systemd on
# the machines this runs on, so every service is started and stopped directly
# (the same commands the machine image uses; see rust-svc machine notes).
set -euo pipefail

PG_VERSION=15
PG_CLUSTER=main
PG_PORT=5432
PG_HBA=/etc/postgresql/$PG_VERSION/$PG_CLUSTER/pg_hba.conf
PG_LOG=/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log

MARIADB_DROPIN=/etc/mysql/mariadb.conf.d/90-tributary.cnf
MARIADB_LOG=/var/log/mysql/error.log
MARIADBD=/usr/sbin/mariadbd

REDIS_LOG=/var/log/redis/ci.log

NATS=/usr/sbin/nats-server
NATS_LOG=/var/log/nats-server.log
NATS_STORE=/var/lib/nats-server

WAIT_SECONDS=60

log() { echo "services: $*"; }

# Print an error naming the service, the tail of its log, and exit non-zero.
fail() {
    local service=$1 logfile=$2 msg=$3
    echo "services: ERROR: $service: $msg" >&2
    if [[ -n $logfile && -r $logfile ]]; then
        echo "services: --- last lines of $logfile ---" >&2
        tail -n 30 "$logfile" >&2
    fi
    exit 1
}

# wait_for SERVICE LOGFILE COMMAND...: retry COMMAND once a second until it
# succeeds, or fail after WAIT_SECONDS.
wait_for() {
    local service=$1 logfile=$2 i
    shift 2
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    fail "$service" "$logfile" "not accepting connections after ${WAIT_SECONDS}s"
}

# True while a process runs the given executable.
exe_running() { start-stop-daemon --status --exec "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- packages --

install_packages() {
    local pkg missing=()
    for pkg in postgresql postgresql-contrib mariadb-server mariadb-client redis-server nats-server openssl; do
        if [[ $(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null) != installed ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update
        apt-get install -y "${missing[@]}"
    fi

    local bin
    for bin in "/usr/lib/postgresql/$PG_VERSION/bin/postgres" /usr/bin/pg_ctlcluster /usr/bin/psql \
        "$MARIADBD" /usr/bin/mariadb /usr/bin/mariadb-admin \
        /usr/bin/redis-server /usr/bin/redis-cli "$NATS"; do
        [[ -x $bin ]] || fail packages "" "$bin is missing although its package is installed"
    done
    log "packages ok"
}

# -------------------------------------------------------------- PostgreSQL --

# psql as the postgres OS user over the unix socket: peer auth works there even
# before pg_hba.conf is switched to trust (bare Debian). cd / because psql
# complains when it cannot read the caller's working directory.
pg_sql() {
    (cd / && runuser -u postgres -- psql -X -q -At -v ON_ERROR_STOP=1 -p "$PG_PORT" -d postgres -c "$1")
}

pg_running() { pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; }

# Trust for the socket and loopback only, so tests connect as postgres without a
# password. The replication lines are for physical replication clients
# (pg_basebackup, pg_receivewal); logical replication connections match "all".
# Two test roles come first: tributary_tls may only connect over TLS, and
# tributary_scram must give its password (SCRAM-SHA-256).
PG_HBA_WANTED='# Managed by scripts/services.sh (Tributary): trust on the socket and loopback only.
# TYPE  DATABASE     USER             ADDRESS        METHOD
local   all          all                             trust
hostssl all          tributary_tls    127.0.0.1/32   trust
hostssl all          tributary_tls    ::1/128        trust
host    all          tributary_tls    all            reject
host    all          tributary_scram  127.0.0.1/32   scram-sha-256
host    all          tributary_scram  ::1/128        scram-sha-256
host    all          all   127.0.0.1/32   trust
host    all          all   ::1/128        trust
local   replication  all                  trust
host    replication  all   127.0.0.1/32   trust
host    replication  all   ::1/128        trust'

# pg_hba.conf without comments and with whitespace normalised, for comparison.
hba_rules() { sed -e 's/#.*//' -e 's/[[:space:]]\+/ /g' -e 's/^ //' -e 's/ $//' | grep -v '^$' || true; }

# A CA and a server certificate for localhost, made once, for TLS tests
# (sslmode verify-full checks the server against ca.crt).
PG_TLS_DIR=/var/lib/postgresql/tributary-tls

pg_tls_files() {
    if [[ -s $PG_TLS_DIR/server.crt && -s $PG_TLS_DIR/server.key ]] &&
        openssl verify -CAfile "$PG_TLS_DIR/ca.crt" "$PG_TLS_DIR/server.crt" >/dev/null 2>&1; then
        return
    fi
    log "postgres: making a test CA and a server certificate in $PG_TLS_DIR"
    mkdir -p "$PG_TLS_DIR"
    (
        cd "$PG_TLS_DIR"
        openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
            -keyout ca.key -out ca.crt -subj "/CN=Tributary test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -new -nodes -newkey rsa:2048 -sha256 \
            -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -days 3650 -sha256 -extfile server.ext -out server.crt 2>/dev/null
        rm -f server.csr server.ext ca.srl
    )
    chown -R postgres:postgres "$PG_TLS_DIR"
    chmod 755 "$PG_TLS_DIR"
    chmod 600 "$PG_TLS_DIR/server.key" "$PG_TLS_DIR/ca.key"
    chmod 644 "$PG_TLS_DIR/ca.crt" "$PG_TLS_DIR/server.crt"
}

postgres_setup() {
    if ! pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
        log "postgres: creating cluster $PG_VERSION/$PG_CLUSTER"
        pg_createcluster --port "$PG_PORT" "$PG_VERSION" "$PG_CLUSTER"
    fi

    # A bare Debian pg_hba.conf uses peer/scram-sha-256; replace it wholesale
    # (keeping the original once as .orig) rather than editing rules in place.
    local hba_changed=0
    if [[ $(hba_rules <"$PG_HBA") != "$(hba_rules <<<"$PG_HBA_WANTED")" ]]; then
        [[ -e $PG_HBA.orig ]] || cp -p "$PG_HBA" "$PG_HBA.orig"
        printf '%s\n' "$PG_HBA_WANTED" >"$PG_HBA"
        chown postgres:postgres "$PG_HBA"
        chmod 640 "$PG_HBA"
        hba_changed=1
        log "postgres: rewrote $PG_HBA (trust on socket and loopback)"
    fi

    if ! pg_running; then
        log "postgres: starting"
        pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" start ||
            fail postgres "$PG_LOG" "pg_ctlcluster start failed"
        hba_changed=0 # a fresh start has read the new file
    fi
    wait_for postgres "$PG_LOG" pg_sql 'select 1'

    # Compare what the running server uses with what we want; ALTER SYSTEM
    # (postgresql.auto.conf, read after postgresql.conf and conf.d) only what
    # is short. All three settings take effect only at server start.
    local rows name setting pending reasons=()
    rows=$(pg_sql "SELECT name, setting, pending_restart FROM pg_settings
                   WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders')")
    while IFS='|' read -r name setting pending; do
        case $name in
        wal_level)
            if [[ $setting != logical ]]; then
                pg_sql "ALTER SYSTEM SET wal_level = logical"
                reasons+=("wal_level $setting->logical")
            fi
            ;;
        max_replication_slots | max_wal_senders)
            # Tests run many sources at once, each with a slot and a
            # walsender (and a temporary slot during snapshots).
            if ((setting < 32)); then
                pg_sql "ALTER SYSTEM SET $name = 32"
                reasons+=("$name $setting->32")
            fi
            ;;
        esac
        # Set before (e.g. by an earlier run whose restart failed) but not live yet.
        if [[ $pending == t && " ${reasons[*]} " != *" $name "* ]]; then
            reasons+=("$name pending restart")
        fi
    done <<<"$rows"

    if ((${#reasons[@]})); then
        log "postgres: restarting (${reasons[*]})"
        pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$PG_CLUSTER" restart ||
            fail postgres "$PG_LOG" "pg_ctlcluster restart failed"
    elif ((hba_changed)); then
        # pg_hba.conf only needs a reload, never a restart.
        log "postgres: reloading configuration"
        pg_sql 'SELECT pg_reload_conf()' >/dev/null
    fi

    # TLS with our test certificate: a reload is enough.
    pg_tls_files
    local tls
    tls=$(pg_sql "SELECT current_setting('ssl') || ' ' || current_setting('ssl_cert_file')")
    if [[ $tls != "on $PG_TLS_DIR/server.crt" ]]; then
        pg_sql "ALTER SYSTEM SET ssl = on"
        pg_sql "ALTER SYSTEM SET ssl_cert_file = '$PG_TLS_DIR/server.crt'"
        pg_sql "ALTER SYSTEM SET ssl_key_file = '$PG_TLS_DIR/server.key'"
        pg_sql 'SELECT pg_reload_conf()' >/dev/null
        log "postgres: TLS on with the test certificate"
    fi
    # The test roles (superusers: they create publications on tables
    # postgres owns). Setting the password each time keeps it SCRAM.
    pg_sql "DO \$\$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tributary_scram') THEN
            CREATE ROLE tributary_scram LOGIN REPLICATION SUPERUSER;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tributary_tls') THEN
            CREATE ROLE tributary_tls LOGIN REPLICATION SUPERUSER;
        END IF;
    END \$\$"
    pg_sql "SET password_encryption = 'scram-sha-256'; ALTER ROLE tributary_scram PASSWORD 'tributary-scram-secret'"

    wait_for postgres "$PG_LOG" pg_isready -q -h 127.0.0.1 -p "$PG_PORT"
    # What the tests do: user postgres, no password, TCP.
    wait_for postgres "$PG_LOG" psql -X -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -Atc 'select 1'
    local live
    live=$(psql -X -w -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -At -F ' ' -c \
        "SELECT 'wal_level=' || current_setting('wal_level'),
                'max_replication_slots=' || current_setting('max_replication_slots'),
                'max_wal_senders=' || current_setting('max_wal_senders')")
    [[ $live == *wal_level=logical* ]] || fail postgres "$PG_LOG" "wal_level is not logical after restart ($live)"
    log "postgres ok (${live// /, })"
}

# ----------------------------------------------------------------- MariaDB --

MARIADB_DROPIN_WANTED='# Managed by scripts/services.sh (Tributary): settings for binlog CDC.
[mariadbd]
# Needed when mariadbd is started directly as root (no systemd unit to set User=).
user = mysql
bind-address = 127.0.0.1
# Debian logs to syslog by default, and these machines have no syslog.
log_error = /var/log/mysql/error.log
log_bin = /var/lib/mysql/mariadb-bin
binlog_format = ROW
binlog_row_image = FULL
# Column names in table map events (the default NO_LOG has none).
binlog_row_metadata = FULL
server_id = 1
gtid_strict_mode = 1
max_connections = 500'

# Client over the unix socket as root: works with unix_socket auth (bare
# Debian) as well as with an empty root password.
maria_sock() { mariadb --protocol=socket -u root -N -B "$@"; }
maria_tcp() { mariadb -h 127.0.0.1 -P 3306 -u root -N -B "$@"; }

mariadb_start() {
    # /run is a tmpfs: the socket/pid directory disappears on reboot.
    mkdir -p /run/mysqld /var/log/mysql
    chown mysql:mysql /run/mysqld
    [[ $(stat -c %U /var/log/mysql) == mysql ]] || chown mysql:adm /var/log/mysql
    # Started the way the machine image starts it; mariadbd reads my.cnf and
    # the drop-in itself (mysqld_safe would only add a restart loop).
    start-stop-daemon --start --oknodo --background --exec "$MARIADBD" ||
        fail mariadb "$MARIADB_LOG" "start-stop-daemon could not start $MARIADBD"
}

mariadb_stop() {
    local i
    if ! mariadb-admin --protocol=socket -u root shutdown 2>/dev/null; then
        # Fallback: SIGTERM is a clean shutdown for mariadbd too.
        start-stop-daemon --stop --quiet --exec "$MARIADBD" --retry TERM/60 || true
    fi
    for ((i = 0; i < WAIT_SECONDS; i++)); do
        exe_running "$MARIADBD" || return 0
        sleep 1
    done
    fail mariadb "$MARIADB_LOG" "still running ${WAIT_SECONDS}s after shutdown"
}

mariadb_setup() {
    local changed=0
    install -d -m 755 "$(dirname "$MARIADB_DROPIN")"
    if [[ ! -f $MARIADB_DROPIN ]] || [[ $(<"$MARIADB_DROPIN") != "$MARIADB_DROPIN_WANTED" ]]; then
        printf '%s\n' "$MARIADB_DROPIN_WANTED" >"$MARIADB_DROPIN"
        chmod 644 "$MARIADB_DROPIN"
        changed=1
        log "mariadb: wrote $MARIADB_DROPIN"
    fi

    # Debian's /etc/mysql/my.cnf (-> mariadb.cnf) includes mariadb.conf.d/,
    # but a machine image may replace it with a plain file that does not (seen
    # on rust-svc machines); then the drop-in would be silently ignored.
    local main_cnf
    main_cnf=$(readlink -f /etc/mysql/my.cnf)
    if ! grep -Eqs '^[[:space:]]*!includedir[[:space:]]+/etc/mysql/mariadb\.conf\.d/?[[:space:]]*$' "$main_cnf"; then
        printf '\n# Added by scripts/services.sh (Tributary): read the drop-in directory.\n!includedir /etc/mysql/mariadb.conf.d/\n' >>"$main_cnf"
        changed=1
        log "mariadb: added !includedir /etc/mysql/mariadb.conf.d/ to $main_cnf"
    fi
    "$MARIADBD" --print-defaults | grep -q -- '--binlog_row_metadata=FULL' ||
        fail mariadb "" "mariadbd does not read $MARIADB_DROPIN (check mariadbd --print-defaults)"

    if ! exe_running "$MARIADBD"; then
        log "mariadb: starting"
        mariadb_start
        changed=0 # a fresh start reads the current files
    fi
    wait_for mariadb "$MARIADB_LOG" maria_sock -e 'select 1'

    # Restart when the files changed, or when the running server does not use
    # them (e.g. a restart in an earlier run failed).
    local want="1 ROW FULL FULL 1" live
    live=$(maria_sock -e 'select @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@gtid_strict_mode' | tr '\t' ' ')
    if ((changed)) || [[ $live != "$want" ]]; then
        log "mariadb: restarting (config changed=$changed; running log_bin binlog_format binlog_row_image binlog_row_metadata gtid_strict_mode = $live)"
        mariadb_stop
        mariadb_start
        wait_for mariadb "$MARIADB_LOG" maria_sock -e 'select 1'
        live=$(maria_sock -e 'select @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, @@gtid_strict_mode' | tr '\t' ' ')
        [[ $live == "$want" ]] || fail mariadb "$MARIADB_LOG" "settings not applied after restart (got: $live, want: $want)"
    fi

    # Over TCP the server sees host 127.0.0.1 (skip-name-resolve), which
    # root@localhost does not match: tests need root@127.0.0.1, empty password.
    wait_for mariadb "$MARIADB_LOG" mariadb-admin -h 127.0.0.1 -P 3306 -u root ping
    if ! maria_tcp -e 'select 1' >/dev/null 2>&1; then
        log "mariadb: allowing root over TCP 127.0.0.1 without a password"
        maria_sock -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
                       ALTER USER 'root'@'127.0.0.1' IDENTIFIED BY '';
                       GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
                       FLUSH PRIVILEGES;"
    fi
    maria_tcp -e 'select 1' >/dev/null || fail mariadb "$MARIADB_LOG" "root cannot log in over 127.0.0.1:3306"
    log "mariadb ok (log_bin binlog_format binlog_row_image binlog_row_metadata gtid_strict_mode = $live)"
}

# ------------------------------------------------------------------- Redis --

redis_up() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

redis_setup() {
    if ! redis_up; then
        log "redis: starting"
        mkdir -p /var/lib/redis /var/log/redis
        # Same command as the machine image: nothing is kept on disk.
        redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
            --dir /var/lib/redis --logfile "$REDIS_LOG" ||
            fail redis "$REDIS_LOG" "redis-server failed to start"
    fi
    wait_for redis "$REDIS_LOG" redis_up
    log "redis ok"
}

# -------------------------------------------------------------------- NATS --

# The INFO line a NATS server sends on connect; empty if nothing answers.
nats_info() {
    # shellcheck disable=SC2016 # $line is expanded by the inner bash
    timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && IFS= read -r -t 4 line <&3 && printf "%s\n" "$line"' 2>/dev/null || true
}

nats_js_up() { [[ $(nats_info) == INFO*'"jetstream":true'* ]]; }

nats_start() {
    mkdir -p "$NATS_STORE"
    start-stop-daemon --start --oknodo --background --exec "$NATS" -- \
        -a 127.0.0.1 -p 4222 -js -sd "$NATS_STORE" -l "$NATS_LOG" ||
        fail nats "$NATS_LOG" "start-stop-daemon could not start $NATS"
}

nats_setup() {
    local info
    info=$(nats_info)
    if [[ -z $info ]]; then
        log "nats: starting"
        nats_start
    elif [[ $info != INFO* ]]; then
        fail nats "" "something that is not NATS listens on 127.0.0.1:4222"
    elif [[ $info != *'"jetstream":true'* ]]; then
        # The INFO line says whether JetStream is on, whatever started the
        # server (flags or a config file).
        log "nats: running without JetStream, restarting with -js"
        start-stop-daemon --stop --quiet --exec "$NATS" --retry TERM/30 ||
            fail nats "$NATS_LOG" "could not stop the running nats-server"
        nats_start
    fi
    wait_for nats "$NATS_LOG" nats_js_up
    log "nats ok (jetstream on)"
}

# -------------------------------------------------------------------- main --

main() {
    [[ $EUID -eq 0 ]] || {
        echo "services: ERROR: must run as root" >&2
        exit 1
    }
    # `services.sh redis`: only Redis (the target-restart test starts it
    # again the way everything else does).
    if [[ ${1:-} == redis ]]; then
        redis_setup
        return
    fi
    install_packages
    postgres_setup
    mariadb_setup
    redis_setup
    nats_setup
    log "all services up"
}

main "$@"
