#!/usr/bin/env bash
# Write constraints.txt: the versions of every package that `pip install ".[EXTRAS]"` resolves to
# today, in a fresh virtual environment, without the old constraints. Run it on a schedule (e.g.
# monthly, or when a dependency releases), then run the test suite against the new file
# (`.ci/run` installs with it) and commit it if the tests pass.
#
#   scripts/refresh_constraints.sh                 # every extra in pyproject.toml except gpu
#   EXTRAS=cpu,train,dev scripts/refresh_constraints.sh
#   PYTHON=python3.11 scripts/refresh_constraints.sh
#
# The extras default to all of [project.optional-dependencies] but `gpu` (onnxruntime-gpu and
# onnxruntime install into the same folder: one per environment), read from pyproject.toml, so an
# extra added later is included without editing this script. The new file replaces the old one
# only when the install and the freeze both succeeded.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"   # Python 3.11+ (tomllib reads pyproject.toml)
if [ -z "${EXTRAS:-}" ]; then
  EXTRAS=$("$PYTHON" - <<'PY'
import tomllib
with open("pyproject.toml", "rb") as f:
    extras = tomllib.load(f)["project"].get("optional-dependencies", {})
print(",".join(name for name in extras if name != "gpu"))
PY
)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$work/venv/bin/python" -m pip install -q --upgrade pip
# a regular (not editable) install of this checkout, no constraints: what resolves today
"$work/venv/bin/python" -m pip install -q ".[${EXTRAS}]"
"$work/venv/bin/python" -m pip check
{
  echo "# Versions known to work together: pip install -c constraints.txt -e \".[cpu,train,dev]\""
  echo "# Made by scripts/refresh_constraints.sh on $(date -u +%Y-%m-%d), $("$work/venv/bin/python" -V), extras ${EXTRAS}"
  "$work/venv/bin/python" -m pip freeze --exclude cxrviewer | LC_ALL=C sort -f
} > "$work/constraints.txt"
grep -q '^numpy==' "$work/constraints.txt"   # a freeze that lists nothing is not a result
mv "$work/constraints.txt" constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages, extras ${EXTRAS})"
