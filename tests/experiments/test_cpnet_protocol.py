"""The CPNet paper protocols (shapelib.experiments.cpnet) on the real KeypointNet chairs: the paper's
settings in the configs, training items drawn from the training split only (by name), validation
selection, a quick-scale run that beats random embeddings and whose checkpoint re-evaluates to its
record, the part-label training data, and the REPORT rows."""
import dataclasses

import numpy as np
import pytest
import torch

from shapelib.experiments import checkpoints, registry, runner

CPNET = ["cpnet_keypointnet_chair_pointnet", "cpnet_keypointnet_chair_pointnet_seed1",
         "cpnet_keypointnet_chair_pointnet_seed2", "cpnet_keypointnet_chair_dgcnn", "cpnet_keypointnet_chair_dgcnn_seed1",
         "cpnet_keypointnet_chair_pointnet_parts", "cpnet_keypointnet_chair_pointnet_parts_seed1"]


@pytest.fixture(scope="module")
def C():
    from shapelib.experiments import cpnet

    return cpnet


def test_protocols_registered_with_the_papers_settings(C):
    names = registry.names("cpnet_")
    assert set(CPNET) <= set(names)
    base = registry.get(C.POINTNET).config
    assert (base["lr"], tuple(base["betas"]), base["decay_every"], base["decay"]) == (1e-3, (0.9, 0.999), 10, 0.9)
    assert (base["lam"], base["embed_dim"], base["models_per_step"]) == (1.0, 128, 4)
    for seed in (1, 2):   # the seed runs differ from seed 0 in the seed only
        cfg = registry.get(f"{C.POINTNET}_seed{seed}").config
        assert {k for k in cfg if cfg[k] != base[k]} == {"seed"} and cfg["seed"] == seed
    d = registry.get(C.DGCNN).config
    assert {k for k in d if d[k] != base[k]} == {"backbone", "epochs"}
    for name in (C.DGCNN, C.PARTS):   # their seed-1 runs differ in the seed only
        cfg, other = registry.get(name).config, registry.get(name + "_seed1").config
        assert {k for k in cfg if cfg[k] != other[k]} == {"seed"} and other["seed"] == 1
    assert registry.get(C.PARTS).config["embed_dim"] == 128


def test_training_items_come_from_the_training_split_by_name(real_data, C):
    from shapelib.data import keypointnet

    cfg = registry.get(C.POINTNET).config
    items = C._train_items(cfg, torch.device("cpu"))
    train = {f"03001627-{m}" for it in items for m in it["models"]}
    splits = keypointnet.splits()
    assert train <= splits["train"] and not train & (splits["val"] | splits["test"])
    assert len(train) == 71 and len(items) == cfg["n_partitions"] * (71 // 4)
    for it in items[:20]:
        assert len(set(it["models"])) == 4 and len(it["x"]) == 4
        assert len(it["labels"]) == sum(len(k) for k in it["kp"])
    D = items[0]["D"].numpy()
    assert np.allclose(D, D.T) and np.allclose(np.diag(D), 0) and D.max() > 0.5
    # the loss is a finite scalar with gradients into the network
    model = C._build(cfg)
    loss = C._loss(cfg)(model, items[0])
    loss.backward()
    assert torch.isfinite(loss) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.parameters())
    assert all(p.grad is None for p in model.best.parameters())


def test_validation_selection_keeps_the_best_weights(C):
    from shapelib import cpnet

    model = C.ValSelected(cpnet.make_backbone("PointNet", 16))
    x = torch.randn(64, 3)
    assert model.offer(0.5, 3)
    chosen = model.net(x).detach().clone()
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(1.0)
    assert not model.offer(0.7, 6)           # worse: the best copy stays
    model.eval()
    assert torch.allclose(model(x), chosen) and int(model.best_epoch) == 3
    model.train()
    assert not torch.allclose(model(x), chosen)   # training goes on with the current weights
    copy = C.ValSelected(cpnet.make_backbone("PointNet", 16))
    copy.load_state_dict(model.state_dict())
    copy.eval()
    assert torch.allclose(copy(x), chosen) and float(copy.best_val) == 0.5


def test_quick_run_beats_random_and_reevaluates_to_its_record(real_data, ckpt_dir, monkeypatch, C):
    """Three epochs of the PointNet protocol (the quick scale of CI): test mGE below half of random
    embeddings on the same chairs, and the saved checkpoint gives its record's per-chair numbers
    on the two check chairs."""
    from shapelib import cpnet

    proto = registry.get(C.POINTNET)
    quick = dataclasses.replace(proto, config={**proto.config, "epochs": 3, "val_every": 1, "epoch_size": 6,
                                               "rotations_deg": ()})
    monkeypatch.setitem(registry._PROTOCOLS, C.POINTNET, quick)
    record = runner.train(C.POINTNET, show_progress=False)
    S = record.summary("mge")
    test = C.chair_sets("test")
    rnd = cpnet.mge_per_set(test, cpnet.random_embeddings(test, seed=0))["mge"]
    assert S["n"] == 19 and S["mean"] < 0.5 * rnd
    assert 1 <= S["selected_epoch"] <= 3 and S["val_mge"] < 0.5 * rnd
    assert len(quick.check_shapes) == 2
    model, rec = registry.load_model(C.POINTNET)
    out = quick.evaluate(model, quick.config, torch.device("cpu"), quick.check_shapes)["per_shape"]
    assert set(out) == set(quick.check_shapes)
    for sid, numbers in out.items():
        assert numbers["transfer_mge"] == pytest.approx(rec.evaluation["per_shape"][sid]["transfer_mge"], rel=1e-4)


def test_part_training_chairs_exclude_keypointnet_val_and_test(real_data, C):
    from shapelib.data import keypointnet

    chairs = C.part_chairs()
    where = keypointnet.split_of()
    assert 90 <= len(chairs) < 100
    assert all(where.get(f"03001627-{c['name']}") not in ("val", "test") for c in chairs)
    for c in chairs[:10]:
        assert set(np.unique(c["y"])) <= {0, 1, 2, 3} and len(c["y"]) == len(c["pos"])
        lo, hi = c["pos"].min(0), c["pos"].max(0)
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0, abs=1e-5) and np.allclose(lo + hi, 0, atol=1e-5)


def test_report_rows_state_paper_goal_and_spread(C):
    """Rows from records built by hand: the seeds' mean and spread, the goals reached or not."""
    from shapelib.experiments.checkpoints import Record

    def rec(name, mge, rot=None):
        cfg = registry.get(name).config
        S = {"mge": {"mean": mge, "median": mge, "n": 19, "paper": 0.198 if "parts" not in name else 0.278}}
        if rot is not None:
            S["rotated_random"] = {"mean": rot, "median": rot}
        return Record(experiment=name, config=cfg, seeds=[cfg["seed"]], epochs_done=cfg["epochs"],
                      evaluation={"per_shape": {}, "summary": S}, hardware="x86_64 · 2 cores · 1 torch threads · no GPU",
                      device="cpu")

    recs = {C.POINTNET: rec(C.POINTNET, 0.08, 0.4), C.POINTNET + "_seed1": rec(C.POINTNET + "_seed1", 0.10, 0.45),
            C.PARTS: rec(C.PARTS, 0.2)}
    base = {"test": {"n": 19}, "random": {"mean": 0.54, "std": 0.002, "seeds": [0, 1, 2], "per_seed": [0.54] * 3},
            "hks_wks": {"mge": 0.53}, "xyz": {"mge": 0.09}}
    rows = C.report_rows(recs, base)
    pn = next(r for r in rows if "mGE of PointNet (checkpoints)" in r["quantity"])
    assert pn["ours_value"] == pytest.approx(0.09) and pn["seeds"] == [0, 1] and pn["spread"]["std"] == pytest.approx(0.01)
    assert "goal <= 0.25: reached" in pn["ours"] and "0.5 x random (0.270): reached" in pn["ours"]
    parts = next(r for r in rows if "Table 3" in r["quantity"])
    assert "worse than correspondence-supervised (0.090): reached" in parts["ours"]
    assert any("rotated" in r["quantity"] and r["ours_value"] == pytest.approx(0.425) for r in rows)
    keys = {"quantity", "paper", "ours", "data", "protocol", "n", "seeds", "ours_value", "paper_value", "unit",
            "spread", "scale"}
    assert all(set(r) == keys for r in rows)


def _committed(name):
    import json
    from pathlib import Path

    path = Path(checkpoints.directory()).parent / name
    if not path.exists():
        pytest.skip(f"{path.name} not committed")
    return json.loads(path.read_text())


def test_committed_baselines_reproduce(real_data, C):
    """The committed untrained baselines: random (seed 0) and xyz mGE recomputed on the same test chairs."""
    from shapelib import cpnet

    rec = _committed("cpnet_keypointnet_chair_baselines.json")
    test = C.chair_sets("test")
    assert rec["test"]["ids"] == list(test.names)
    assert cpnet.mge_per_set(test, cpnet.random_embeddings(test, seed=0))["mge"] == pytest.approx(
        rec["random"]["per_seed"][0], abs=1e-5)
    assert cpnet.mge_per_set(test, list(test.points))["mge"] == pytest.approx(rec["xyz"]["mge"], abs=1e-5)
    assert rec["xyz"]["mge"] < 0.5 * rec["random"]["mean"] and rec["hks_wks"]["mge"] > rec["xyz"]["mge"]


def test_committed_cloud_vs_mesh_geodesics_reproduce_on_the_sample_chair(real_data, C):
    """The sample chair (its real KeypointNet cloud and its mesh): the committed cloud-vs-mesh
    differences are recomputed; cloud graph geodesics stay within 30 % of the mesh's on average."""
    rec = _committed("cpnet_cloud_vs_mesh_geodesics.json")
    sample = "88382b877be91b2a572f8e1c1caad99e"
    out = C.cloud_vs_mesh_geodesics(ids=[sample])["chairs"][sample]
    assert out["cloud"] == "KeypointNet cloud"
    for key, value in out.items():
        if isinstance(value, float):
            assert value == pytest.approx(rec["chairs"][sample][key], abs=2e-3), key
        else:
            assert value == rec["chairs"][sample][key], key
    assert out["graph_rel_diff_mean"] < 0.3
    assert rec["pairs_without_mesh_path"] > 0   # separate mesh parts: no mesh geodesic between them


def test_shipped_summary_and_table_come_from_the_committed_records(C):
    """Notebook 06's results table without the data: each method's per-seed values are its
    committed records' test mGE, the mean over seeds is the row, and the table names the paper's
    value, the number of test chairs and the seeds of every row."""
    import json
    from pathlib import Path

    shipped = C.shipped_mge(None)
    if not shipped:
        pytest.skip("no committed CPNet checkpoint")
    base = C.stored_baselines()
    for method, row in shipped.items():
        recs = [json.loads((Path(checkpoints.directory()) / f"{n}.json").read_text()) for n in row["names"]]
        assert row["stored"] == [r["evaluation"]["summary"]["mge"]["mean"] for r in recs]
        assert row["seeds"] == [r["config"]["seed"] for r in recs] and row["paper"] == C.PAPER[method]
        assert "live" not in row
    summary = C.real_summary(shipped, base, live=False)
    assert summary["PointNet"] == pytest.approx(np.mean(shipped["PointNet"]["stored"]))
    assert summary["Random"] == base["random"]["mean"] and summary["xyz"] == base["xyz"]["mge"]
    table = C.real_table(shipped, base, summary, live=False)
    for method, value in summary.items():
        line = next(ln for ln in table.splitlines() if ln.startswith(method + " "))
        assert f"{value:.3f}" in line and f" {base['test']['n']} " in line
        if method in shipped:
            assert f"{C.PAPER[method]:.3f}" in line and ", ".join(map(str, shipped[method]["seeds"])) in line
    with pytest.raises(ValueError, match="shipped_mge"):
        C.real_summary(shipped, base, live=True)     # nothing re-evaluated: no live numbers to summarise


def test_annotation_stats_of_the_real_chairs(real_data, C):
    from shapelib.data import keypointnet

    st = C.annotation_stats("chair")
    ann = keypointnet.annotations("chair")
    assert st["N_M"] == len(ann) and st["N_K"] == sum(len(a["semantic_id"]) for a in ann)
    lo, med, hi = st["C"]
    assert 1 <= lo <= med <= hi <= st["sets"]
    assert st["clouds"]["train"] == 71 and st["clouds"]["val"] == 11 and st["clouds"]["test"] == 19
