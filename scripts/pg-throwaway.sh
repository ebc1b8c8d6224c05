# shellcheck shell=bash
# A throwaway PostgreSQL cluster in a temp dir on a free loopback port, for tests and the demo.
# Source this file, then:   pg_throwaway_start   (exports PG_THROWAWAY_URL)
#                           pg_throwaway_stop    (stops the server, removes the dir)
# Runs the server as the `postgres` user when invoked as root (initdb refuses root).

pg_throwaway_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return
    fi
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$d" ]; then
        echo "PostgreSQL server binaries (initdb, pg_ctl) not found; install them with: apt-get install -y postgresql" >&2
        return 1
    fi
    echo "$d"
}

pg_throwaway_free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

pg_throwaway_start() {
    local bin port as
    bin=$(pg_throwaway_bin) || return 1
    port=$(pg_throwaway_free_port) || return 1
    PG_THROWAWAY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/costagg-pg.XXXXXX")
    as=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$PG_THROWAWAY_DIR"
        as=(runuser -u postgres --)
    fi
    "${as[@]}" "$bin/initdb" -D "$PG_THROWAWAY_DIR/data" -U costagg --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$PG_THROWAWAY_DIR/initdb.log" 2>&1 || { cat "$PG_THROWAWAY_DIR/initdb.log" >&2; return 1; }
    # fsync off: a throwaway cluster need not survive a power cut, and tests run faster.
    "${as[@]}" "$bin/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -l "$PG_THROWAWAY_DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_THROWAWAY_DIR -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$PG_THROWAWAY_DIR/server.log" >&2; return 1; }
    PG_THROWAWAY_BIN=$bin
    PG_THROWAWAY_AS=("${as[@]}")
    PG_THROWAWAY_URL="postgres://costagg@127.0.0.1:$port/postgres"
    export PG_THROWAWAY_DIR PG_THROWAWAY_URL PG_THROWAWAY_BIN
}

pg_throwaway_stop() {
    [ -n "${PG_THROWAWAY_DIR:-}" ] || return 0
    "${PG_THROWAWAY_AS[@]}" "$PG_THROWAWAY_BIN/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_THROWAWAY_DIR"
    PG_THROWAWAY_DIR=
}
