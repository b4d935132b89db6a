#!/usr/bin/env bash
# The main job: set up, fetch real MNIST, train a spiking MLP with DPAP pruning on the CPU
# (progress bar + one line per epoch), then write the report and print its summary table
# (accuracy, connectivity, units left per layer, SOPs, energy). Extra arguments go to
# `devprune train` (e.g. --set train.threads=1). The run directory is runs/mnist-quick-dpap;
# an earlier run there is kept, renamed with its modification time, so nothing is lost.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh "dev"
run=runs/mnist-quick-dpap
devprune data fetch mnist
if [ -e "$run" ]; then
  kept="$run.$(date -r "$run" +%Y%m%d-%H%M%S)"
  mv "$run" "$kept"
  echo "[main] kept the previous run as $kept"
fi
devprune train mnist-mlp-dpap-quick --out "$run" "$@"
devprune report "$run"
echo
sed -n '/^| quantity/,/^$/p' "$run/report.md"
echo "plots: $run/accuracy_connectivity.png $run/units.png; full report: $run/report.md"
