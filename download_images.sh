#!/usr/bin/env bash
# Download the MIMIC-CXR-JPG images that mimiccxrvqa/dataset/{train,valid,test}.json reference.
# Kept for users of the original README: a thin wrapper over `cxrvqa download-images`. Run it from
# the directory that holds mimiccxrvqa/; extra arguments go to the command (e.g. --dry-run,
# --splits test, --username NAME). Credentials as for download_and_build_dataset.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Prefer this checkout's package, so the scripts work without `pip install`.
export PYTHONPATH="${here}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python3}" -m cxrvqa download-images --root . --dataset-dir mimiccxrvqa/dataset "$@"
