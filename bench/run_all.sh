#!/usr/bin/env bash
# Run every benchmark; each writes bench/results/<name>.json.
#
#   bash bench/run_all.sh                # full versions (run on a quiet machine; see bench/README.md)
#   bash bench/run_all.sh --smoke        # seconds-long versions: every code path, meaningless numbers (CI)
#   bash bench/run_all.sh --threads 1    # other options of `python -m bench` pass through
#
# The Python used is $PYTHON, else `python` on PATH (activate the project's virtual environment).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" -m bench "$@"
