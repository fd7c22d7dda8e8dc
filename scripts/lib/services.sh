#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis run on loopback (starting them, or installing
# them from Debian when absent) and exports COFFER_TEST_DATABASE_URL and
# COFFER_TEST_REDIS_URL. Source this file.

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_url_that_works() {
  local url
  for url in "postgres://postgres@127.0.0.1:5432/postgres" "postgres://$(id -un)@127.0.0.1:5432/test" \
             "postgres://postgres:coffer@127.0.0.1:5432/postgres"; do
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
    local started=0
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || started=$?
    if [ "$started" -ne 0 ] && [ "$started" -ne 2 ]; then return 1; fi
    for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  local url
  if ! url=$(postgres_url_that_works); then
    # A fresh Debian install has no trust on TCP: give the postgres role a local password.
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'coffer'\"" >/dev/null 2>&1 || true
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
    for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  export COFFER_TEST_REDIS_URL="redis://127.0.0.1:6379"
}

# boto3 consumes direct presigned URLs in the tests (PyPI).
ensure_boto3() {
  python3 -c "import boto3" >/dev/null 2>&1 && return 0
  echo "==> installing boto3 from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check boto3
}

# moto's S3 server: the one S3 here with Object Lock, for the retention-mirroring test.
moto_port="${COFFER_MOTO_PORT:-3910}"
ensure_moto() {
  if ! command -v moto_server >/dev/null 2>&1; then
    echo "==> installing moto[server] from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]" || return 1
  fi
  if ! curl -fsS "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1; then
    echo "==> starting moto on 127.0.0.1:$moto_port"
    mkdir -p "$HOME/.cache/coffer"
    nohup moto_server -H 127.0.0.1 -p "$moto_port" >"$HOME/.cache/coffer/moto.log" 2>&1 &
    for _ in $(seq 1 50); do
      curl -fsS "http://127.0.0.1:$moto_port/moto-api/" >/dev/null 2>&1 && break
      sleep 0.2
    done
  fi
  export COFFER_TEST_MOTO_ENDPOINT="http://127.0.0.1:$moto_port"
}
