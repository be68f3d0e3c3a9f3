#!/usr/bin/env bash
# Build mimiccxrvqa/dataset/{train,valid,test}.json and ans2idx.json from ./physionet.org/files/...
# Kept for users of the original README: a thin wrapper over `cxrvqa build`. Run it from the
# directory that holds physionet.org/ and mimiccxrvqa/; extra arguments go to `cxrvqa build`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Prefer this checkout's package, so the scripts work without `pip install`.
export PYTHONPATH="${here}${PYTHONPATH:+:${PYTHONPATH}}"
exec "${PYTHON:-python3}" -m cxrvqa build --physionet-root . --dataset-dir mimiccxrvqa/dataset "$@"
