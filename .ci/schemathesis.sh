#!/usr/bin/env bash
# schemathesis against the REST API's generated schema (SPEC 9.2): every operation of
# /api/jobs/schema/, as a staff user (HTTP basic auth), a bounded number of generated
# requests each (valid and invalid ones), on a real HTTP server (runserver on a free port)
# over a throwaway database seeded with a little of everything. Fails on any 5xx and on any
# answer the schema does not describe (status code, content type, body, headers).
#
#   bash .ci/schemathesis.sh [DJANGO-VENV]   # default .venv312; .ci/run passes its django61 venv
#
# Environment:
#   SCHEMATHESIS_DATABASE_URL  the server's database instead of a SQLite file: a PostgreSQL
#                              or MySQL URL whose database name contains "schemathesis"
#                              (dropped and created before the run, dropped after)
#   SCHEMATHESIS_MAX_EXAMPLES  generated requests per operation and phase (default 25)
#   SCHEMATHESIS_SEED          default fixed, so that CI explores the same cases each run;
#                              "random" for new ones
#   SCHEMATHESIS_LOGS          a folder for the server's log and the JUnit report (default
#                              a temporary one, removed)
#   SCHEMATHESIS_VENV          where the CLI is installed (default .venv-schemathesis): a
#                              venv of its own, so that its pytest plugin and Hypothesis
#                              stay out of the test venvs
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
VENV=${1:-$ROOT/.venv312}
ST_VENV=${SCHEMATHESIS_VENV:-$ROOT/.venv-schemathesis}
MAX_EXAMPLES=${SCHEMATHESIS_MAX_EXAMPLES:-25}
SEED=${SCHEMATHESIS_SEED:-9211}

WORK=$(mktemp -d)
LOGS=${SCHEMATHESIS_LOGS:-$WORK}
mkdir -p "$LOGS"
SERVER_PID=
DB_CREATED=
cleanup() {
    local code=$?
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "$DB_CREATED" ]; then
        "$VENV/bin/python" -m tests.api.schemathesis_seed dropdb || true
    fi
    rm -rf "$WORK"
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- the CLI, in a venv of its own (not a dependency of the project) ---------------------
if [ ! -x "$ST_VENV/bin/schemathesis" ]; then
    echo "Installing schemathesis into $ST_VENV"
    rm -rf "$ST_VENV"
    "$VENV/bin/python" -m venv "$ST_VENV"
    "$ST_VENV/bin/python" -m pip install --quiet "schemathesis>=4.32,<5" 2>&1 \
        | sed '/is ignored: it is neither a file nor a directory/d'
fi
"$ST_VENV/bin/schemathesis" --version

# -- a throwaway database with a staff user and data -------------------------------------
export DJANGO_SETTINGS_MODULE=tests.api.schemathesis_settings
export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}
if [ -n "${SCHEMATHESIS_DATABASE_URL:-}" ]; then
    export DATABASE_URL=$SCHEMATHESIS_DATABASE_URL
    DB_CREATED=yes
    "$VENV/bin/python" -m tests.api.schemathesis_seed createdb
else
    export DATABASE_URL="sqlite:///$WORK/api.sqlite3"
fi
USERNAME=schemathesis
PASSWORD=$("$VENV/bin/python" -c 'import secrets; print(secrets.token_urlsafe(16))')
"$VENV/bin/python" -m django migrate --verbosity 0
"$VENV/bin/python" -m tests.api.schemathesis_seed seed "$USERNAME" "$PASSWORD" 2>&1

# -- a real HTTP server on a free port ---------------------------------------------------
PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/python" -m django runserver --noreload "127.0.0.1:$PORT" \
    >"$LOGS/schemathesis-server.log" 2>&1 &
SERVER_PID=$!
SCHEMA=http://127.0.0.1:$PORT/api/jobs/schema/
for _ in $(seq 60); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOGS/schemathesis-server.log"; echo "the server died" >&2; exit 1; }
    if "$VENV/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
        "http://127.0.0.1:$PORT/api/jobs/health/?check=database" 2>/dev/null; then
        break
    fi
    sleep 0.5
done
kill -0 "$SERVER_PID" 2>/dev/null || { cat "$LOGS/schemathesis-server.log"; echo "the server died" >&2; exit 1; }

# -- schemathesis ------------------------------------------------------------------------
# Checks: all of them (no 5xx; every status code, content type, body and header the one
# the schema documents; 405s with an Allow header; a created job readable, a deleted one
# gone; no answer without credentials), less two that cannot hold for this API:
# - positive_data_acceptance: a schema cannot say which task names are registered, which
#   cron expressions and time zones parse or which priority names exist, so bodies and
#   filters it calls valid get correct 400s ({"task": ["No registered task named ..."]}).
# - negative_data_rejection: HTML form encodings are accepted beside JSON, where "0" is a
#   boolean false (terminate=0), and DRF's page_size falls back to its default for a value
#   it cannot read (page_size=null), as a pagination parameter should, not a 400.
# Per-operation settings (health's documented 503, dictionaries of real ids and names) are
# in .ci/schemathesis.toml.
seed_args=(--seed "$SEED")
[ "$SEED" = random ] && seed_args=()
code=0
(
    cd "$WORK"  # Hypothesis and schemathesis leave nothing in the clone
    "$ST_VENV/bin/schemathesis" --config-file "$ROOT/.ci/schemathesis.toml" run "$SCHEMA" \
        --auth "$USERNAME:$PASSWORD" \
        --checks all \
        --exclude-checks positive_data_acceptance,negative_data_rejection \
        --max-examples "$MAX_EXAMPLES" \
        "${seed_args[@]}" \
        --workers 2 \
        --request-timeout 30 \
        --wait-for-schema 30 \
        --generation-database none \
        --no-color \
        --report junit --report-dir "$LOGS/schemathesis-report"
) || code=$?

if [ "$code" -ne 0 ]; then
    echo
    echo "=== server log (last 80 lines; all in $LOGS/schemathesis-server.log)"
    tail -n 80 "$LOGS/schemathesis-server.log"
fi
exit "$code"
