#!/usr/bin/env bash
# Build the terrain benchmark's peer, InVEST SDR (natcap.invest 3.20.2), into a venv at ${1:-/work/peer/venv}.
# PyPI has no Linux wheel of natcap.invest, pygeoprocessing or GDAL's bindings: they are built from their
# sdists against Debian's GDAL 3.6.2 and numpy 1.24.2 (Debian's python, --system-site-packages), with
# Cython 3.0 (3.3 fails on pygeoprocessing 2.4.11) and setuptools >= 77 (the SPDX licence field). ~15 min.
# Then: python benchmarks/terrain_ls.py --peer-python <venv>/bin/python
set -euo pipefail
venv=${1:-/work/peer/venv}
work=$(mktemp -d)
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq gdal-bin libgdal-dev python3-gdal python3-venv \
  python3-dev build-essential >/dev/null
/usr/bin/python3 -m venv --system-site-packages "$venv"
export PATH="$venv/bin:$PATH"  # natcap.invest's build calls pybabel
printf 'numpy==1.24.2\nGDAL==3.6.2\n' > "$work/constraints.txt"
pip install -q 'cython>=3.0,<3.1' 'setuptools>=77' 'wheel>=0.43' 'setuptools_scm>=8' babel
pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$work" natcap.invest==3.20.2 pygeoprocessing==2.4.11
for pkg in pygeoprocessing-2.4.11 natcap_invest-3.20.2; do
  tar -xzf "$work/$pkg.tar.gz" -C "$work"
  (cd "$work/$pkg" && pip wheel -q --no-build-isolation --no-deps -w "$work/wheels" .)
  pip install -q -c "$work/constraints.txt" "$work"/wheels/"$pkg"*.whl
done
python -c "import natcap.invest, natcap.invest.sdr.sdr; print('natcap.invest', natcap.invest.__version__)"
