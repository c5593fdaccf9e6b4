#!/usr/bin/env bash
# Build the data folder with all five corpora (EMO-DB, RAVDESS, nEMO, ASED, TurEV-DB) for training.
# Usage: bash scripts/five_corpora.sh DEST [SOURCES]
#   SOURCES holds git copies of the three public repositories (nEMO, ASED_V1, TurEV-DB, any clone or
#   git directory); those missing there are cloned into it (default DEST/.sources). Then
#   export RTSER_DATA=DEST. A corpus already built in DEST is kept (delete its folder to rebuild).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: bash scripts/five_corpora.sh DEST [SOURCES]}
sources=${2:-$dest/.sources}
mkdir -p "$sources"
declare -A repos=([nEMO]=amu-cai/nEMO [ASED_V1]=wgwangang/ASED_V1 [TurEV-DB]=Xeonen/TurEV-DB)
for name in "${!repos[@]}"; do
    [ -e "$sources/$name" ] || git clone --quiet "https://github.com/${repos[$name]}" "$sources/$name"
done
python=.venv/bin/python; [ -x "$python" ] || python=python3
"$python" ../shared/tools/add_corpora.py "$dest" --nemo "$sources/nEMO" --ased "$sources/ASED_V1" --turev "$sources/TurEV-DB"
echo "export RTSER_DATA=$(cd "$dest" && pwd)"
