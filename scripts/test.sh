#!/usr/bin/env bash
# Runs every test. The mirror's tests need a PostgreSQL server: unless VAULT_TEST_PG names one,
# a throwaway cluster is started for the run (installed from the distribution's packages when
# missing and run as root) and removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VAULT_TEST_PG:-}" ]; then
  eval "$(scripts/pg-throwaway.sh start)"
  trap 'scripts/pg-throwaway.sh stop' EXIT
fi
cargo test --workspace --locked "$@"
