#!/usr/bin/env sh
# Prints a docker/.env with fresh random secrets for the Compose stack:
#   docker/gen-env.sh > docker/.env
set -eu
hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
cat <<ENV
COFFER_IMAGE=coffer:local
COFFER_PORT=8080
COFFER_PUBLIC_URL=http://localhost:8080
COFFER_MASTER_KEY=$(hex 32)
COFFER_METRICS_TOKEN=$(hex 16)
POSTGRES_PASSWORD=$(hex 16)
REDIS_PASSWORD=$(hex 16)
GARAGE_RPC_SECRET=$(hex 32)
GARAGE_ADMIN_TOKEN=$(hex 32)
S3_BUCKET=coffer
S3_ACCESS_KEY_ID=GK$(hex 12)
S3_SECRET_ACCESS_KEY=$(hex 32)
ENV
