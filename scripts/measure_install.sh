#!/usr/bin/env bash
# Install time and size of trainlab's core and of its extras, each into a fresh virtual
# environment, with the pinned versions (constraints.txt) and torch from the local wheel cache.
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
  pip_quietly "$venv/bin/python" -m pip install -q --upgrade pip
  pip_quietly "$venv/bin/python" -m pip install -q -c "$root/constraints.txt" torch==2.13.0
  base=$(du -sm "$venv" | cut -f1)
  target="$root"
  [ "$one" = core ] || target="$root[$one]"
  start=$(date +%s)
  pip_quietly "$venv/bin/python" -m pip install -q -c "$root/constraints.txt" "$target"
  seconds=$(($(date +%s) - start))
  size=$(du -sm "$venv" | cut -f1)
  echo "$one: ${seconds} s to install beside torch, $((size - base)) MB beside torch's ${base} MB"
done
