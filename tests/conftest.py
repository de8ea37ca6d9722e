"""Shared fixtures. Tests never write into the repository: caches go to a temp folder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """A fresh operator cache per test session (unless SHAPELIB_CACHE is set explicitly)."""
    if "SHAPELIB_CACHE" not in os.environ:
        os.environ["SHAPELIB_CACHE"] = str(tmp_path_factory.mktemp("shapelib-cache"))
    yield


def _shared_data() -> Path | None:
    for cand in (os.environ.get("SHAPELIB_DATA"), REPO.parent / "shared" / "data"):
        if cand and (Path(cand) / "faust_registrations").is_dir():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The folder of real datasets ($SHAPELIB_DATA or ../shared/data); skips when absent."""
    path = _shared_data()
    if path is None:
        pytest.skip("real data not found: set SHAPELIB_DATA (see data/README.md)")
    # found beside the repository without SHAPELIB_DATA: point the loaders there too (they read
    # $SHAPELIB_DATA, then data/), so a test that gets this fixture reads the data it found
    os.environ.setdefault("SHAPELIB_DATA", str(path))
    return path.resolve()  # as config.data_root() reports it (symlinks resolved)


@pytest.fixture(scope="session")
def icosphere():
    """Unit icosphere, 2,562 vertices (intrinsic Delaunay: all triangles acute)."""
    import trimesh

    from shapelib import Shape

    m = trimesh.creation.icosphere(subdivisions=4)
    return Shape(m.vertices, m.faces, name="icosphere4")


@pytest.fixture(scope="session")
def plane():
    """A jittered, Delaunay-triangulated unit square in the z=0 plane."""
    from scipy.spatial import Delaunay

    from shapelib import Shape

    n, jitter = 15, 0.2
    rng = np.random.default_rng(0)
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n))
    xy = np.c_[x.ravel(), y.ravel()]
    h = 1.0 / (n - 1)
    inner = (xy > 0).all(1) & (xy < 1).all(1)
    xy[inner] += rng.uniform(-jitter * h, jitter * h, size=(inner.sum(), 2))
    return Shape(np.c_[xy, np.zeros(len(xy))], Delaunay(xy).simplices, name="plane")


@pytest.fixture(scope="session")
def humans():
    """Two synthetic humans (shapes) and their collection: the solution tests' small inputs."""
    from shapelib import data

    coll = data.humans(source="synthetic")
    return coll[0].shape, coll[1].shape, coll


@pytest.fixture(scope="session")
def small_human(humans):
    """The first synthetic human, decimated (a few hundred vertices)."""
    from shapelib.data.synthetic import variants

    return variants.make_variant(humans[0], "decimated", seed=0).shape
