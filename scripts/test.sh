#!/usr/bin/env bash
# The project's test command: installs what the tests need when it is missing — the moto STS emulator
# with the AWS CLI and boto3 (scripts/install-moto.sh), the Redis server (scripts/install-redis.sh) and
# the official SARIF schema (scripts/install-sarif-schema.sh) — keeps the AWS SDK off the instance
# metadata service and any real endpoint, then runs `cargo test --locked` with the given arguments.
#
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh --test sts      # any cargo test arguments
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${MOTO_SERVER:-}" ]]; then
    MOTO_SERVER=$(bash scripts/install-moto.sh | tail -n 1)
fi
export MOTO_SERVER
if [[ -z "${REDIS_SERVER:-}" ]]; then
    REDIS_SERVER=$(bash scripts/install-redis.sh | tail -n 1)
fi
export REDIS_SERVER
if [[ -z "${SARIF_SCHEMA:-}" ]]; then
    SARIF_SCHEMA=$(bash scripts/install-sarif-schema.sh | tail -n 1)
fi
export SARIF_SCHEMA

# No metadata service, no developer profiles, an explicit region and fake static credentials:
# the tests only ever talk to moto on 127.0.0.1.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^AWS_' || true)
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=AKIAEMRFSROLEMAPTEST AWS_SECRET_ACCESS_KEY=base-secret-access-key-for-tests

exec cargo test --locked "$@"
