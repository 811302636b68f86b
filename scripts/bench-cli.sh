#!/usr/bin/env bash
# Times the whole `vault purchase add` command (process start, unlock, validation, durable
# commit) against `vault id` (same start and unlock, no write), over N runs each, first with the
# Argon2id unlock (default parameters) and then with the key lent by `vault unlock`'s agent, in
# the same run; prints medians. Usage: scripts/bench-cli.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-30}
cargo build --release --quiet -p vault-cli
bin=target/release/vault
dir=$(mktemp -d)
mkdir -m 700 "$dir/run"
export VAULT_DIR="$dir/vault" VAULT_PASSPHRASE="bench passphrase" XDG_RUNTIME_DIR="$dir/run"
trap '"$bin" lock >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$bin" init --weak-passphrase-ok >/dev/null

median_ms() {
  sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1e6}'
}
time_runs() {
  for _ in $(seq "$n"); do
    s=$(date +%s%N); "$@" >/dev/null; e=$(date +%s%N); echo $((e - s))
  done
}
add=$(time_runs "$bin" purchase add --item Tea --seller Acme --price 4.50 --currency EUR | median_ms)
id=$(time_runs "$bin" id | median_ms)
"$bin" unlock --for 30m >/dev/null
agent_add=$(time_runs env -u VAULT_PASSPHRASE "$bin" purchase add --item Tea --seller Acme --price 4.50 --currency EUR | median_ms)
agent_id=$(time_runs env -u VAULT_PASSPHRASE "$bin" id | median_ms)
"$bin" lock >/dev/null
echo "vault purchase add (whole command, default Argon2id): median ${add} ms over $n runs"
echo "vault id (start + unlock only, no write):              median ${id} ms over $n runs"
echo "vault purchase add (whole command, agent unlocked):   median ${agent_add} ms over $n runs"
echo "vault id (agent unlocked, no write):                  median ${agent_id} ms over $n runs"
