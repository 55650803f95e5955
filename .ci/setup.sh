# Sourced by .ci/demo and .ci/run: make .venv and install the project into it.
# TSKIT_EXTRAS chooses what comes with it: empty (what .ci/demo sets) is the client alone, enough for
# the demo; "dev" (the default, what .ci/run uses) adds the listener, widgets, Jupyter and test tools.
# Re-installs only when pyproject.toml or the wanted extras changed, so a second run starts at once.
set -euo pipefail

PYTHON=${PYTHON:-python3}
TSKIT_EXTRAS=${TSKIT_EXTRAS-dev}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "tskit needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.tskit-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
# "HASH" means the client alone is installed, "HASH dev" the lot; the lot also serves the demo.
if [ "$have" != "$want${TSKIT_EXTRAS:+ $TSKIT_EXTRAS}" ] && { [ -n "$TSKIT_EXTRAS" ] || [ "${have%% *}" != "$want" ]; }; then
  target=.
  [ -n "$TSKIT_EXTRAS" ] && target=".[$TSKIT_EXTRAS]"
  echo "Installing tskit${TSKIT_EXTRAS:+ with [$TSKIT_EXTRAS]} into .venv ..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
  echo "$want${TSKIT_EXTRAS:+ $TSKIT_EXTRAS}" > "$stamp"
fi
