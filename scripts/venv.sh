#!/usr/bin/env bash
# Make .venv match requirements.lock (sourced by ./dev and ./test): create it if missing,
# reinstall only when the lock file or pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.onecity-installed"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
want="$(cat "$root/requirements.lock" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$root/requirements.lock"
  "$venv/bin/python" -m pip install --quiet --no-deps -e "$root"
  echo "$want" > "$stamp"
fi
