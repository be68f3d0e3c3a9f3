#!/usr/bin/env bash
# Download the PhysioNet files the build needs into ./physionet.org/files/..., then build the dataset.
# Kept for users of the original README: a thin wrapper over `cxrvqa download` and build_dataset.sh.
# Extra arguments go to `cxrvqa download` (e.g. --username NAME). The password is read from
# PHYSIONET_PASSWORD, ~/.netrc (machine physionet.org) or a hidden prompt, never from arguments.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Prefer this checkout's package, so the scripts work without `pip install`.
PYTHONPATH="${here}${PYTHONPATH:+:${PYTHONPATH}}" "${PYTHON:-python3}" -m cxrvqa download --root . "$@"
exec bash "${here}/build_dataset.sh"
