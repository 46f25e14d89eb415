#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: `bash scripts/fuzz.sh [SECONDS_PER_TARGET]` (default 60).
# Installs cargo-fuzz from crates.io when it is missing. The targets build on the stable toolchain
# (RUSTC_BOOTSTRAP=1 unlocks the flags cargo-fuzz passes) without a sanitizer: Rust code is memory
# safe, so what the fuzzers look for is panics, hangs and wrong answers (assertions in the targets).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/check_config
cp ../tests/corpus/*.json ../examples/configs/*.json corpus/check_config/
for target in check_config s3_path compiled_equals_reference; do
  echo "=== fuzz $target for ${seconds}s"
  cargo fuzz run --sanitizer none --release "$target" -- -max_total_time="$seconds" -max_len=4096 2>&1 \
    | grep -E "^(#[0-9]+\s+DONE|Done [0-9]+ runs|==[0-9]+== ERROR|thread .* panicked|SUMMARY)" || true
  # cargo fuzz exits non-zero on a crash; `set -o pipefail` would hide it behind grep, so check again.
  if ls "artifacts/$target"/crash-* >/dev/null 2>&1; then
    echo "fuzz target $target found a crash: see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
