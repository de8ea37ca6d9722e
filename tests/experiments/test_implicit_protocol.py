"""The DIFM Table 1 protocol (shapelib.experiments.implicit) on the real part-labelled chairs: the
paper's matching settings in the config, the 30 ordered pairs (5 arm → no-arm), the summary, goal
and REPORT rows computed from per-pair numbers, and the committed checkpoint re-evaluated on one
pair against its record (skipped without the data or the checkpoint)."""
import types

import numpy as np
import pytest

from shapelib.experiments import checkpoints, registry


@pytest.fixture(scope="module")
def E():
    from shapelib.experiments import implicit

    return implicit


def test_protocol_has_the_papers_matching_settings(E):
    cfg = registry.get(E.NAME).config
    m = cfg["match"]
    assert (m["n_steps"], m["n_iters"], m["lam"], tuple(m["layers"]), tuple(m["weights"])) == (50, 3, 0.01, (3, 6), (1.0, 0.1))
    assert cfg["n_train"] == len(set(cfg["train_ids"])) == 25
    assert registry.get(E.NAME).check_shapes == ["341c9b05->341a2d3d"]


def _fake_rows(rng, n_pairs=6, n_arm=2, ours_better=True):
    rows = {}
    for p in range(n_pairs):
        r = {"arm_to_noarm": p < n_arm, "parts": 3}
        for k in ("cd", "emd", "cd_part", "emd_part"):
            for m in ("none", "free", "rigid", "ours"):
                r[f"{k}_{m}"] = float(rng.uniform(1, 2))
            r[f"{k}_ours"] = float(rng.uniform(0.1, 0.5) if ours_better else rng.uniform(3, 4))
        rows[f"p{p}"] = r
    return rows


def test_summary_goal_and_report_rows_follow_the_per_pair_numbers(E):
    rng = np.random.default_rng(0)
    for better in (True, False):
        per = _fake_rows(rng, ours_better=better)
        S = E.summarise(per)
        arm = [r for r in per.values() if r["arm_to_noarm"]]
        assert S["all"]["cd_part_free"]["n"] == 6 and S["arm_to_noarm"]["cd_part_free"]["n"] == 2
        assert np.isclose(S["arm_to_noarm"]["emd_ours"]["mean"], np.mean([r["emd_ours"] for r in arm]))
        assert np.isclose(S["all"]["cd_rigid"]["std"], np.std([r["cd_rigid"] for r in per.values()]))
        g = E.goal(S)
        best = min(S["arm_to_noarm"][f"cd_part_{m}"]["mean"] for m in ("none", "free", "rigid"))
        assert g["reached"] is better and np.isclose(g["gap_cd_part"], S["arm_to_noarm"]["cd_part_ours"]["mean"] - best)
        rec = types.SimpleNamespace(evaluation={"stats": S}, config=registry.get(E.NAME).config, steps_done=1000,
                                    trained_on_text=lambda: "1 CPU thread")
        rows = E.report_rows(rec)
        assert len(rows) == 2 * (4 + 1)
        ours = [r for r in rows if r["quantity"].endswith(E.METHOD_TITLES["ours"])]
        assert [r["n"] for r in ours] == [6, 2] and ours[0]["paper_value"] == 4.202
        assert np.isclose(ours[1]["ours_value"], round(1e3 * S["arm_to_noarm"]["cd_part_ours"]["mean"], 4))
        goal_rows = [r for r in rows if "goal" in r["quantity"]]
        assert all(("not reached" in r["ours"]) is not better for r in goal_rows)
        assert "±" in E.format_table(S, "arm_to_noarm") and "[4.202]" in E.format_table(S, "all")


@pytest.fixture(scope="module")
def chairs(real_data, E):
    from shapelib.data import shapenetpart

    if not shapenetpart.labelled_ids():
        pytest.skip("shapenet_chairs/part_labels not in this data copy")
    return E.test_chairs()


def test_thirty_ordered_pairs_five_arm_to_noarm(chairs, E):
    pairs = E.all_pairs(chairs)
    assert len(pairs) == 30 and len({E.pair_key(chairs[i], chairs[j]) for i, j in pairs}) == 30
    arm = [(i, j) for i, j in pairs if chairs[i].meta["has_arms"] and not chairs[j].meta["has_arms"]]
    assert len(arm) == 5
    for it in chairs:   # labelled samples carry the part of the face they lie on
        p, lab, f, _ = E.labelled_samples(it, 256, 0)
        assert np.array_equal(lab, it.meta["face_parts"][f]) and np.abs(p).max() <= 0.5


def test_committed_checkpoint_reproduces_one_pair_of_its_record(chairs, E):
    if E.NAME not in checkpoints.available():
        pytest.skip(f"{E.NAME} not committed")
    model, record = registry.load_model(E.NAME)
    assert len(record.per_shape) == 30 and record.status == "complete"
    # the stored summary is the summary of the stored pairs
    S = E.summarise(record.per_shape)
    assert all(np.isclose(record.evaluation["stats"][g][k]["mean"], S[g][k]["mean"]) for g in S for k in S[g])
    key = "341c9b05->341a2d3d"   # an arm → no-arm pair
    rows, drift = E.reevaluate_pairs(model, record, [key], keep_points=False)
    assert rows[key]["arm_to_noarm"] and drift < 1e-4, f"{key}: re-evaluation drifts {drift:.2e} from the record"
