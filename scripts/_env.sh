# Shared set-up, sourced by the README's commands: creates .venv, installs devprune with the
# pinned CPU torch (constraints.txt), and re-installs only when the inputs change.
# Usage: source scripts/_env.sh "EXTRAS"   (e.g. "dev,interop")
set -euo pipefail
DEVPRUNE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${DEVPRUNE_VENV:-$DEVPRUNE_ROOT/.venv}
PYTHON_BIN=${PYTHON:-python3}
EXTRAS=${1:-dev}
EXTRA_PIP=${2:-}   # further packages installed with --no-deps (CUDA-pulling optional ones)

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
stamp_file="$VENV/.devprune-setup"  # one line per installed (inputs, extras) combination
inputs=$(cat "$DEVPRUNE_ROOT/pyproject.toml" "$DEVPRUNE_ROOT/constraints.txt" | sha256sum | cut -c1-16)
want="$inputs [$EXTRAS] ${EXTRA_PIP:-no-extra-pip}"
if ! grep -qxF "$want" "$stamp_file" 2>/dev/null; then
  echo "[setup] installing devprune[$EXTRAS] with torch pinned by constraints.txt"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -c "$DEVPRUNE_ROOT/constraints.txt" -e "$DEVPRUNE_ROOT[$EXTRAS]"
  if [ -n "$EXTRA_PIP" ]; then
    # These declare CUDA-pulling dependencies; their Python code runs on CPU without them.
    # shellcheck disable=SC2086
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps $EXTRA_PIP
  fi
  # Inputs changed: earlier lines describe another pyproject/constraints, drop them.
  grep -s "^$inputs " "$stamp_file" > "$stamp_file.tmp" || true
  echo "$want" >> "$stamp_file.tmp"
  mv "$stamp_file.tmp" "$stamp_file"
fi
export PATH="$VENV/bin:$PATH"
