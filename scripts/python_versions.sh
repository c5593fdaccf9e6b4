#!/usr/bin/env bash
# The runtime's tests under the Pythons users run beside 3.11 (which scripts/test.sh covers): 3.12
# and 3.13, where this machine has them (pyenv's or the system's python3.X). Each gets a virtual
# environment .venv-3.X with rtser and the dev and micro-vad extras (no torch: the training tests stay with
# scripts/test.sh on 3.11), then pytest on every test file that does not train. Usage: bash scripts/python_versions.sh [pytest args...]   (after scripts/test.sh has
# installed the system packages). Prints one line per Python: its version and pytest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
training_tests=(tests/test_architectures.py tests/test_augment.py tests/test_calibration.py tests/test_detector.py tests/test_normalization.py tests/test_training.py)
ignored=()
for test in "${training_tests[@]}"; do ignored+=(--ignore "$test"); done
for version in 3.12 3.13; do
    python=""
    # the system's python3.X, or pyenv's (whose shims work only for the version pyenv has selected)
    for candidate in "$(command -v "python$version" || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version"*/bin/"python$version"; do
        if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c pass 2>/dev/null; then
            python=$candidate
            break
        fi
    done
    if [ -z "$python" ]; then
        echo "python$version: not on this machine"
        continue
    fi
    venv=".venv-$version"
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e ".[dev,micro-vad]" >/dev/null
    summary=$("$venv/bin/python" -m pytest -q -p no:cacheprovider "${ignored[@]}" "$@" 2>&1 | tail -1)
    echo "$("$venv/bin/python" --version): $summary"
done
