#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ and runs each for a short time on its committed corpus; a
# crash, a panic, a hang over 1 s or an allocation over the limit fails the script (libFuzzer's
# reproducer is left in fuzz/artifacts/TARGET/). Prints libFuzzer's figures per target.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET] [TARGET...]     (default 20 s, every target)
#
# Toolchain: nightly when rustup has it; otherwise the stable toolchain with RUSTC_BOOTSTRAP=1
# (cargo fuzz needs -Z flags: the sanitizer and the coverage passes). Needs cargo-fuzz
# (`cargo install cargo-fuzz --locked`). When neither works, says so and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export CARGO_TERM_COLOR=never

secs=${1:-20}
shift || true

# Limits, from vault-core's documented ones: a frame is at most MAX_FRAME (64 MiB), a statement
# body 16 KiB, a vault's Argon2 cost taken from the file at most the default 64 MiB (fuzz target
# vault_open skips dearer claims). No single allocation may exceed two frames (128 MiB); the
# whole process stays under 1 GiB (AddressSanitizer's shadow memory and quarantine included);
# no input may take over 1 s.
limits=(-rss_limit_mb=1024 -malloc_limit_mb=128 -timeout=1)
# The bundled SQLite amalgamation has same-named statics in two functions ('aiOff'), which
# AddressSanitizer's ODR check reports at start-up in the stable-toolchain build; a C++ concern,
# not a finding.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

skip() {
  echo "fuzz: SKIPPED: $*"
  exit 0
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  skip "cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
fi
if command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
  toolchain=(+nightly)
  echo "fuzz: toolchain nightly ($(rustc +nightly --version))"
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
  echo "fuzz: no nightly toolchain; using $(rustc --version) with RUSTC_BOOTSTRAP=1"
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# The fuzz crate is outside the main workspace, so `cargo fmt --all` there does not see it.
cargo fmt --check
# Debug assertions on: integer overflow in a decoder is a finding too.
if ! cargo "${toolchain[@]}" fuzz build --debug-assertions; then
  if [ "${#toolchain[@]}" -eq 0 ]; then
    skip "the fuzz targets do not build with this toolchain (needs nightly, or stable with RUSTC_BOOTSTRAP=1 and the sanitizer runtime)"
  fi
  echo "fuzz: FAILED to build the targets" >&2
  exit 1
fi

# Scratch space (new inputs, logs, the vault files of vault_open) in tmpfs when there is one.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  work=$(mktemp -d -p /dev/shm vault-fuzz.XXXXXX)
else
  work=$(mktemp -d)
fi
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work"
failed=()
printf '%-20s %12s %10s %8s %8s\n' target executions exec/s seconds peak_mb > "$work/summary"
for target in "${targets[@]}"; do
  echo "== fuzz $target (${secs} s)"
  mkdir -p "$work/$target"
  start=$(date +%s)
  # New inputs go to the scratch directory; the committed corpus is only read.
  if cargo "${toolchain[@]}" fuzz run --debug-assertions "$target" "$work/$target" "corpus/$target" -- \
    -max_total_time="$secs" -print_final_stats=1 "${limits[@]}" >"$work/$target.log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
    tail -n 60 "$work/$target.log"
  fi
  end=$(date +%s)
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$target.log" | tail -n 1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/$target.log" | tail -n 1)
  grep "Automerge panic at" "$work/$target.log" || true
  printf '%-20s %12s %10s %8s %8s %s\n' "$target" "${runs:-?}" "${rate:-?}" "$((end - start))" "${peak:-?}" \
    "$status" >> "$work/summary"
done
cat "$work/summary"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (reproducers in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ok, ${#targets[@]} targets, ${secs} s each"
