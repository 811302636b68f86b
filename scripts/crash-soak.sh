#!/usr/bin/env bash
# The full crash soak behind the table in docs/reliability.md: SIGKILL at random points of every
# kind of write and of both nodes mid-sync, checked every 10 rounds (see tests/tests/store/crash_soak.rs).
# Usage: scripts/crash-soak.sh [ROUNDS] (default 1000); VAULT_SOAK_SEED=N replays a run.
set -euo pipefail
cd "$(dirname "$0")/.."
export VAULT_SOAK_ROUNDS=${1:-1000}
cargo test --release --locked -p vault-tests --test store -- crash_soak --nocapture 2>&1 | grep -E "crash soak|panicked|test result"
