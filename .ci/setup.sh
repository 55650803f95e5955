# Sourced by .ci/demo, .ci/run and .ci/matrix: make a virtual environment and install the project into it.
# TSKIT_EXTRAS chooses what comes with it: empty (what .ci/demo sets) is the client alone, enough for
# the demo; "dev" (the default, what .ci/run uses) adds the listener, widgets, Jupyter and test tools.
# TSKIT_VENV is the environment's folder (default .venv); TSKIT_PIN adds requirements that narrow the
# install (.ci/matrix's "pandas~=2.2.0"); PYTHON is the interpreter that makes it (default python3).
# Re-installs only when pyproject.toml, the extras or the pins changed, so a second run starts at once.
set -euo pipefail

PYTHON=${PYTHON:-python3}
TSKIT_EXTRAS=${TSKIT_EXTRAS-dev}
TSKIT_VENV=${TSKIT_VENV:-.venv}
TSKIT_PIN=${TSKIT_PIN:-}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "tskit needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$TSKIT_VENV/bin/python" ]; then
  "$PYTHON" -m venv "$TSKIT_VENV"
fi
stamp=$TSKIT_VENV/.tskit-installed
want=$(cat pyproject.toml <(echo "$TSKIT_PIN") | sha256sum | cut -d' ' -f1)
have=$(cat "$stamp" 2>/dev/null || true)
# "HASH" means the client alone is installed, "HASH dev" the lot; the lot also serves the demo.
if [ "$have" != "$want${TSKIT_EXTRAS:+ $TSKIT_EXTRAS}" ] && { [ -n "$TSKIT_EXTRAS" ] || [ "${have%% *}" != "$want" ]; }; then
  target=.
  [ -n "$TSKIT_EXTRAS" ] && target=".[$TSKIT_EXTRAS]"
  started=$SECONDS
  echo "Installing tskit${TSKIT_EXTRAS:+ with [$TSKIT_EXTRAS]}${TSKIT_PIN:+ and $TSKIT_PIN} into $TSKIT_VENV (pip's progress follows) ..." >&2
  # pip's own lines show what it fetches and builds; a slow network no longer looks like a hang
  # shellcheck disable=SC2086  # TSKIT_PIN is a list of requirements
  "$TSKIT_VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar on -e "$target" $TSKIT_PIN >&2
  echo "Installed into $TSKIT_VENV in $((SECONDS - started)) s." >&2
  echo "$want${TSKIT_EXTRAS:+ $TSKIT_EXTRAS}" > "$stamp"
fi
