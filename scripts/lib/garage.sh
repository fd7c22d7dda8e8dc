#!/usr/bin/env bash
# Starts (or reuses) a one-node Garage S3 server on loopback for tests and
# benchmarks, and exports COFFER_TEST_S3_* for it. Source services.sh
# (remember_started) and then this file.
# State lives in $COFFER_GARAGE_DIR (default ~/.cache/coffer-garage).

garage_dir="${COFFER_GARAGE_DIR:-$HOME/.cache/coffer-garage}"
garage_s3_port="${COFFER_GARAGE_S3_PORT:-3900}"
garage_rpc_port="${COFFER_GARAGE_RPC_PORT:-3901}"
garage_admin_port="${COFFER_GARAGE_ADMIN_PORT:-3903}"
garage_bucket="${COFFER_GARAGE_BUCKET:-coffer-test}"
garage_key_name="coffer-test"
# Sourced without services.sh (bench/harness.py), a started Garage is the caller's to stop.
declare -F remember_started >/dev/null || remember_started() { :; }

garage_install() {
  if command -v garage >/dev/null 2>&1; then return 0; fi
  echo "==> installing garage (cargo install --locked garage; ~9 minutes on 2 cores)"
  env -u CARGO_TARGET_DIR cargo install --locked garage
}

garage_cli() {
  garage -c "$garage_dir/garage.toml" "$@"
}

garage_write_config() {
  mkdir -p "$garage_dir/meta" "$garage_dir/data"
  if [ ! -f "$garage_dir/rpc_secret" ]; then
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$garage_dir/rpc_secret"
  fi
  cat > "$garage_dir/garage.toml" <<TOML
metadata_dir = "$garage_dir/meta"
data_dir = "$garage_dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$garage_rpc_port"
rpc_public_addr = "127.0.0.1:$garage_rpc_port"
rpc_secret = "$(cat "$garage_dir/rpc_secret")"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$garage_s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$garage_admin_port"
TOML
}

garage_running() {
  garage_cli status >/dev/null 2>&1
}

garage_layout_live() {
  garage_cli key list >/dev/null 2>&1
}

garage_start() {
  garage_install || return 1
  garage_write_config
  if ! garage_running; then
    echo "==> starting garage on 127.0.0.1:$garage_s3_port"
    nohup garage -c "$garage_dir/garage.toml" server >"$garage_dir/garage.log" 2>&1 &
    remember_started "kill $!"
    for _ in $(seq 1 50); do
      garage_running && break
      sleep 0.2
    done
    garage_running || { echo "garage did not start; see $garage_dir/garage.log" >&2; return 1; }
  fi
  # One-node layout, applied once. A node that has just started may not
  # answer `layout show` yet, and keys can only be made once a layout is
  # live, so this retries (~30 s) until the key API answers.
  local layout node version
  for _ in $(seq 1 150); do
    garage_layout_live && break
    if layout=$(garage_cli layout show 2>/dev/null) && grep -q "No nodes currently have a role" <<<"$layout"; then
      node=$(garage_cli node id -q 2>/dev/null | cut -d@ -f1)
      version=$(awk -F': *' '/Current cluster layout version/ {print $2}' <<<"$layout")
      garage_cli layout assign -z dc1 -c 1G "$node" >/dev/null \
        && garage_cli layout apply --version "$(( ${version:-0} + 1 ))" >/dev/null
    fi
    sleep 0.2
  done
  garage_layout_live || { echo "garage's layout did not come up; see $garage_dir/garage.log" >&2; return 1; }
  if ! garage_cli key info "$garage_key_name" >/dev/null 2>&1; then
    garage_cli key create "$garage_key_name" >/dev/null
  fi
  # The one-backend-bucket-per-Coffer-bucket tests create buckets.
  garage_cli key allow --create-bucket "$garage_key_name" >/dev/null
  if ! garage_cli bucket info "$garage_bucket" >/dev/null 2>&1; then
    garage_cli bucket create "$garage_bucket" >/dev/null
  fi
  # Every time: a grant lost to an earlier partial run (or a re-created key) comes back.
  garage_cli bucket allow --read --write --owner "$garage_bucket" --key "$garage_key_name" >/dev/null
  local info
  info=$(garage_cli key info "$garage_key_name" --show-secret)
  COFFER_TEST_S3_ENDPOINT="http://127.0.0.1:$garage_s3_port"
  COFFER_TEST_S3_REGION="garage"
  COFFER_TEST_S3_BUCKET="$garage_bucket"
  COFFER_TEST_S3_ACCESS_KEY_ID=$(echo "$info" | awk -F': *' '/Key ID/ {print $2; exit}')
  COFFER_TEST_S3_SECRET_ACCESS_KEY=$(echo "$info" | awk -F': *' '/Secret key/ {print $2; exit}')
  export COFFER_TEST_S3_ENDPOINT COFFER_TEST_S3_REGION COFFER_TEST_S3_BUCKET \
    COFFER_TEST_S3_ACCESS_KEY_ID COFFER_TEST_S3_SECRET_ACCESS_KEY
  [ -n "$COFFER_TEST_S3_ACCESS_KEY_ID" ] && [ -n "$COFFER_TEST_S3_SECRET_ACCESS_KEY" ] || {
    echo "could not read the garage key; garage key info printed:" >&2
    echo "$info" >&2
    return 1
  }
}
