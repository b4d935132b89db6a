#!/usr/bin/env bash
# The main job: set up, fetch real MNIST, train a small spiking network with DPAP pruning
# on the CPU, print the per-epoch progress and the final table, write runs/mnist-quick-dpap.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh "dev"
devprune data fetch mnist
devprune train mnist-mlp-dpap-quick --out runs/mnist-quick-dpap "$@"
devprune report runs/mnist-quick-dpap
