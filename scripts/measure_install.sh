#!/usr/bin/env bash
# Install time and size of trainlab's core and of its extras, each into a fresh virtual
# environment, from its hash-locked set (locks/<set>.txt) and torch from the local wheel cache.
#   scripts/measure_install.sh [core|all|graph|export|postgres|mlflow]...   (default: core all)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip_quietly() {  # pip's own notes about index locations are noise here
  "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
}
choices=("$@")
[ ${#choices[@]} -gt 0 ] || choices=(core all)
for one in "${choices[@]}"; do
  venv="$work/$one"
  python3 -m venv "$venv"
  grep -A1 "^torch==" "$root/locks/core.txt" > "$work/torch.txt"
  pip_quietly "$venv/bin/python" -m pip install -q --no-deps --require-hashes -r "$work/torch.txt"
  base=$(du -sm "$venv" | cut -f1)
  lock="$root/locks/$one.txt"
  start=$(date +%s)
  pip_quietly "$venv/bin/python" -m pip install -q --require-hashes -r "$lock"
  pip_quietly "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation "$root"
  seconds=$(($(date +%s) - start))
  size=$(du -sm "$venv" | cut -f1)
  echo "$one: ${seconds} s to install beside torch, $((size - base)) MB beside torch's ${base} MB"
done
