"""Notebook 01 (Laplacians): worked solutions to its exercises."""
from __future__ import annotations

import numpy as np

from .. import Shape
from .. import operators as ops
from ..geodesics import geodesic_distances


def _icosphere(subdivisions: int) -> Shape:
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=subdivisions)
    return Shape(ico.vertices, ico.faces, name=f"icosphere {subdivisions}")


def _sphere_exact(k: int) -> np.ndarray:
    l = np.concatenate([[ll] * (2 * ll + 1) for ll in range(int(np.sqrt(k)) + 1)])[:k]
    return l * (l + 1.0)


def ex01_convergence(subdivisions=(2, 3, 4, 5), k: int = 36) -> dict:
    """01, exercise 1: sphere eigenvalue error vs mean edge length, and the convergence order."""
    h, err = [], []
    exact = _sphere_exact(k)
    for s in subdivisions:
        sphere = _icosphere(s)
        evals, _ = ops.eigenbasis(*ops.laplacian(sphere), k=k)
        h.append(sphere.mean_edge_length())
        err.append(np.max(np.abs(evals[1:] - exact[1:]) / exact[1:]))
    order = np.polyfit(np.log(h), np.log(err), 1)[0]     # slope on log-log axes
    return {"h": np.array(h), "max_rel_error": np.array(err), "order": float(order)}


def ex01_mass_matrices(subdivision: int = 3, k: int = 36) -> dict:
    """01, exercise 2: lumped vs consistent (full FEM) mass matrix on the sphere."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import eigsh

    sphere = _icosphere(subdivision)
    L, M_lumped = ops.laplacian(sphere)
    f, A = sphere.faces, sphere.face_areas()
    rows = np.repeat(f, 3, axis=1).ravel()                # (i, j) for i, j in each face
    cols = np.tile(f, (1, 3)).ravel()
    vals = np.tile(np.where(np.eye(3).ravel() > 0, 1 / 6, 1 / 12), len(f)) * np.repeat(A, 9)
    M_full = sp.csc_matrix((vals, (rows, cols)), shape=L.shape)
    exact = _sphere_exact(k)
    ev_lumped, _ = ops.eigenbasis(L, M_lumped, k=k)
    ev_full = np.sort(eigsh(L, k=k, M=M_full, sigma=-1e-8, which="LM")[0])
    rel = lambda ev: (ev[1:] - exact[1:]) / exact[1:]
    return {"lumped_mean_signed_error": float(rel(ev_lumped).mean()), "full_mean_signed_error": float(rel(ev_full).mean()),
            "lumped_max_abs_error": float(np.abs(rel(ev_lumped)).max()), "full_max_abs_error": float(np.abs(rel(ev_full)).max())}


def ex01_intrinsic_delaunay(shape: Shape, k: int = 50) -> dict:
    """01, exercise 3: cotan vs intrinsic-Delaunay ('robust') spectrum; where the obtuse triangles are."""
    ev_cot, _ = ops.eigenbasis(*ops.laplacian(shape, method="cotan"), k=k)
    ev_rob, _ = ops.eigenbasis(*ops.laplacian(shape, method="robust"), k=k)
    v, f = shape.vertices, shape.faces
    e = [v[f[:, (i + 2) % 3]] - v[f[:, (i + 1) % 3]] for i in range(3)]      # edge opposite corner i
    cos = [-(e[(i + 1) % 3] * e[(i + 2) % 3]).sum(1) for i in range(3)]      # sign of the cosine at corner i
    obtuse = np.any(np.stack(cos) < 0, axis=0)
    rel = np.abs(ev_rob[1:] - ev_cot[1:]) / ev_cot[1:]
    return {"median_rel_diff": float(np.median(rel)), "max_rel_diff": float(rel.max()),
            "obtuse_fraction": float(obtuse.mean()), "obtuse_faces": np.flatnonzero(obtuse)}


def _match_error(FA, FB, query, D_true, norm):
    from scipy.spatial import cKDTree

    mu, sd = FA.mean(0), FA.std(0) + 1e-12
    _, p2p = cKDTree((FA - mu) / sd).query((FB[query] - mu) / sd)
    return D_true[np.arange(len(query)), p2p] / norm


def _matching_setup(shape_a: Shape, shape_b: Shape, n_query: int, seed: int = 0):
    query = np.random.default_rng(seed).choice(shape_b.n_vertices, n_query, replace=False)
    return query, geodesic_distances(shape_a, query), np.sqrt(shape_a.area())


def ex01_descriptor_times(shape_a: Shape, shape_b: Shape, n_query: int = 300) -> dict:
    """01, exercise 4: HKS matching with all 16 times, only the 5 smallest (local) or only the 5
    largest (global) times; mean geodesic error / sqrt(area)."""
    A, B = ops.compute_operators(shape_a, k=128), ops.compute_operators(shape_b, k=128)
    query, D_true, norm = _matching_setup(shape_a, shape_b, n_query)
    ha, hb = np.log(A.hks()), np.log(B.hks())
    return {name: float(_match_error(ha[:, cols], hb[:, cols], query, D_true, norm).mean())
            for name, cols in (("all 16 times", slice(None)), ("small t only", slice(0, 5)), ("large t only", slice(11, 16)))}


def ex01_noise(shape_a: Shape, shape_b: Shape, sigma_frac: float = 0.005, n_query: int = 300, seed: int = 0) -> dict:
    """01, exercise 5: HKS vs WKS matching after Gaussian vertex noise on pose B."""
    diag = np.linalg.norm(np.ptp(shape_b.vertices, axis=0))
    noisy = shape_b.copy(vertices=shape_b.vertices + np.random.default_rng(seed).normal(0, sigma_frac * diag, shape_b.vertices.shape))
    A = ops.compute_operators(shape_a, k=128)
    query, D_true, norm = _matching_setup(shape_a, shape_b, n_query)
    out = {}
    for tag, s in (("clean", shape_b), ("noisy", noisy)):
        B = ops.compute_operators(s, k=128, cache=tag == "clean")
        out[f"HKS {tag}"] = float(_match_error(np.log(A.hks()), np.log(B.hks()), query, D_true, norm).mean())
        out[f"WKS {tag}"] = float(_match_error(np.log(A.wks()), np.log(B.wks()), query, D_true, norm).mean())
    return out


def ex01_cloud_density(shape: Shape, n_points: int = 2000, kk: int = 60, seed: int = 0) -> dict:
    """01, exercise 6: point-cloud spectrum of a 2,000-point subsample vs the mesh."""
    mesh = ops.compute_operators(shape, k=128)
    full = ops.compute_operators(shape.to_cloud(), k=128)
    idx = np.random.default_rng(seed).choice(shape.n_vertices, n_points, replace=False)
    sub = Shape(shape.vertices[idx], normals=shape.to_cloud().normals[idx])
    L, M = ops.laplacian(sub)
    ev_sub, _ = ops.eigenbasis(L, M * (shape.area() / M.sum()), k=kk)      # same total area as the mesh
    rel = lambda ev: float(np.median(np.abs(ev[1:kk] - mesh.evals[1:kk]) / mesh.evals[1:kk]))
    return {f"all {shape.n_vertices} points": rel(full.evals), f"{n_points} points": rel(ev_sub)}
