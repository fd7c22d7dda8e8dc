#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis run on loopback (starting them, or installing
# them from Debian when absent) and exports COFFER_TEST_DATABASE_URL and
# COFFER_TEST_REDIS_URL. What a run starts, `stop_started_services` stops
# again (garage.sh and moto register theirs too), so the machine is left as
# it was found. Source this file.

# Commands that stop what this run started, last started first.
started_services=()
remember_started() { started_services=("$1" "${started_services[@]}"); }
stop_started_services() {
  local stop
  for stop in "${started_services[@]}"; do eval "$stop" >/dev/null 2>&1 || true; done
  started_services=()
}

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# The password of the role this script creates when no existing login works.
postgres_password_file="$HOME/.cache/coffer/postgres-password"

postgres_url_that_works() {
  local url urls=("postgres://postgres@127.0.0.1:5432/postgres" "postgres://$(id -un)@127.0.0.1:5432/test")
  [ -s "$postgres_password_file" ] \
    && urls+=("postgres://coffer_test:$(cat "$postgres_password_file")@127.0.0.1:5432/coffer_test")
  for url in "${urls[@]}"; do
    # -w: never prompt for a password (a terminal would wait forever).
    if psql -w "$url" -Atqc 'select 1' >/dev/null 2>&1; then echo "$url"; return 0; fi
  done
  return 1
}

ensure_postgres() {
  if [ -n "${COFFER_TEST_DATABASE_URL:-}" ]; then return 0; fi
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      echo "==> installing PostgreSQL from Debian"
      apt_install postgresql postgresql-client || return 1
    fi
    echo "==> starting PostgreSQL"
    # Exit code 2: already running (the package's own scripts may have started it).
    local started=0 version
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || started=$?
    if [ "$started" -ne 0 ] && [ "$started" -ne 2 ]; then return 1; fi
    [ "$started" -eq 0 ] && remember_started "pg_ctlcluster --skip-systemctl-redirect $version main stop"
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  local url
  if ! url=$(postgres_url_that_works); then
    # A fresh Debian install trusts no TCP login: make a role of the suite's
    # own (it creates a database per test), leaving existing roles untouched.
    if [ ! -s "$postgres_password_file" ]; then
      mkdir -p "$(dirname "$postgres_password_file")"
      (umask 077; od -An -tx1 -N16 /dev/urandom | tr -d ' \n' > "$postgres_password_file")
    fi
    local password
    password=$(cat "$postgres_password_file")
    su postgres -c "psql -qc 'CREATE ROLE coffer_test'" >/dev/null 2>&1
    su postgres -c "psql -qc \"ALTER ROLE coffer_test LOGIN CREATEDB PASSWORD '$password'\"" >/dev/null 2>&1
    su postgres -c "createdb -O coffer_test coffer_test" >/dev/null 2>&1
    url=$(postgres_url_that_works) || { echo "cannot log in to PostgreSQL on 127.0.0.1:5432" >&2; return 1; }
  fi
  export COFFER_TEST_DATABASE_URL="$url"
}

ensure_redis() {
  if [ -n "${COFFER_TEST_REDIS_URL:-}" ]; then return 0; fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "==> installing Redis from Debian"
      apt_install redis-server redis-tools || return 1
    fi
    echo "==> starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || return 1
    remember_started "redis-cli -h 127.0.0.1 -p 6379 shutdown nosave"
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export COFFER_TEST_REDIS_URL="redis://127.0.0.1:6379"
}

moto_port="${COFFER_MOTO_PORT:-3910}"
# moto_server comes from the test venv (scripts/lib/python.sh).
ensure_moto() {
  command -v curl >/dev/null 2>&1 || apt_install curl || return 1
  if ! curl -fsS "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1; then
    echo "==> starting moto on 127.0.0.1:$moto_port"
    mkdir -p "$HOME/.cache/coffer"
    nohup moto_server -H 127.0.0.1 -p "$moto_port" >"$HOME/.cache/coffer/moto.log" 2>&1 &
    remember_started "kill $!"
    for _ in $(seq 1 50); do
      curl -fsS "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && break
      sleep 0.2
    done
  fi
  export COFFER_TEST_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
}
