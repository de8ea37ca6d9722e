#!/usr/bin/env bash
# Wheels shapelib needs on a GPU machine that cannot install packages (README, "GPU verification").
# That machine's image has Python 3.12, torch (CUDA), numpy, scipy, scikit-learn, scikit-image,
# matplotlib, tqdm, h5py, networkx and rich; shapelib's other run-time needs travel as wheels:
#   potpourri3d, robust-laplacian  (geodesics, Laplacians; compiled, manylinux x86_64)
#   trimesh                        (benchmark meshes, surface sampling; pure Python)
#   meshio                         (mesh files; pure Python)
#   pykeops, keopscore             (the KeOps backend; pure Python, compiled on the GPU at first use)
# pymeshlab and libigl (synthetic remeshing, winding numbers) are not needed by the check: shapelib
# imports them only where they are used. Usage:  bash benchmarks/gpu_wheels.sh [DEST=.whl]
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"
PLATFORMS=""
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS="$PLATFORMS --platform $p"
done
# one version of each (two versions of one package stop the install on the GPU machine)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $PLATFORMS \
  -d "$DEST" potpourri3d==1.4.0 robust-laplacian==1.1.0 trimesh==5.2.0 meshio==5.3.5
# pykeops/keopscore are published as source only (pure Python): build their wheels here
"$PY" -m pip wheel -q --no-deps -w "$DEST" pykeops==2.3 keopscore==2.3
ls -1 "$DEST"
echo "total: $(du -cb "$DEST"/*.whl | tail -1 | cut -f1 | awk '{printf "%.1f MiB", $1/1048576}')  (working tree + wheels must stay under 64 MiB)"
