#!/usr/bin/env bash
# Regenerates docs/resolve-latency.svg and the reports it is drawn from (docs/resolve-latency/N.json):
# `emrfs-rolemap bench` on generated configurations of N = 10 to 100,000 mappings, 1,000 requests each
# (the four kinds mixed), SECONDS_PER_N seconds each (default 4).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/emrfs-rolemap
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p docs/resolve-latency
for n in 10 100 1000 10000 100000; do
  "$bin" generate --mappings "$n" --requests 1000 --seed 42 --out "$work/$n" >/dev/null
  "$bin" bench --config "$work/$n/config.json" --requests "$work/$n/requests.jsonl" \
    --seconds "${SECONDS_PER_N:-4}" --format json >"docs/resolve-latency/$n.json"
done
python3 scripts/latency_chart.py docs/resolve-latency/{10,100,1000,10000,100000}.json >docs/resolve-latency.svg
echo "wrote docs/resolve-latency.svg"
