"""Ensembles: combinations, differential-evolution weights and their test-split guard, the diagnostics,
and ``python -m ferlib ensemble`` on two tiny runs trained here."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
from ferlib.commands import main
from ferlib.evaluate import ensemble as ens
from ferlib.evaluate.ensemble import (
    TestSplitFitError,
    ambiguity_decomposition,
    combine,
    differential_evolution_weights,
    ensemble_objective,
    error_correlation,
    last_checkpoints,
    majority_vote,
    mean_probabilities,
    negative_log_likelihood,
    objective_on_simplex,
    simplex_grid,
    simplex_weights,
    weighted_probabilities,
)

K = 7


def random_probs(m, n, seed=0, k=K):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(k), size=(m, n))


def planted(n=400, seed=0, noise_members=2):
    """One member that knows the answer (0.7 on the true class), the others Dirichlet noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n)
    good = np.full((n, K), 0.3 / (K - 1))
    good[np.arange(n), y] = 0.7
    noise = [rng.dirichlet(np.ones(K), n) for _ in range(noise_members)]
    return np.stack([noise[0], good, *noise[1:]]), y


# -- combinations ------------------------------------------------------------------------------------

@pytest.mark.parametrize("k_members", [1, 3])
def test_ensemble_of_identical_members_is_the_member(k_members):
    p = random_probs(1, 50)[0]
    y = np.random.default_rng(1).integers(0, K, 50)
    probs = np.stack([p] * k_members)
    np.testing.assert_allclose(mean_probabilities(probs), p)
    np.testing.assert_array_equal(majority_vote(probs), p.argmax(1))
    w = simplex_weights(np.arange(1, k_members + 1))
    np.testing.assert_allclose(weighted_probabilities(probs, w), p)
    w_de = differential_evolution_weights(probs, y, split="PublicTest", seed=0)
    np.testing.assert_allclose(combine(probs, "de", w_de), p)
    if k_members > 1:
        np.testing.assert_allclose(error_correlation(probs, y), 1.0)
        assert ambiguity_decomposition(probs, y)["diversity"] == pytest.approx(0.0, abs=1e-15)


def test_mean_and_weighted_average_by_hand():
    probs = random_probs(3, 20, seed=2)
    np.testing.assert_allclose(mean_probabilities(probs), (probs[0] + probs[1] + probs[2]) / 3)
    w = np.array([0.2, 0.5, 0.3])
    np.testing.assert_allclose(weighted_probabilities(probs, w), 0.2 * probs[0] + 0.5 * probs[1] + 0.3 * probs[2])
    np.testing.assert_allclose(weighted_probabilities(probs, w).sum(1), 1.0)


def test_logit_average_is_the_softmax_of_the_mean_logits():
    z = torch.randn(3, 10, K, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    probs = torch.softmax(z, 2).numpy()
    want = torch.softmax(z.mean(0), 1).numpy()
    np.testing.assert_allclose(ens.logit_average_probabilities(probs), want, rtol=1e-10)
    assert not np.allclose(want, mean_probabilities(probs))  # not the same as averaging probabilities


def test_majority_vote_and_its_tie_rule():
    a = np.array([[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.3, 0.5]])
    b = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.4, 0.35, 0.25]])
    c = np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1], [0.1, 0.3, 0.6]])
    probs = np.stack([a, b, c])
    # row 0: two votes for class 0 beat one for class 1, although class 1 has the highest mean probability
    # row 1: votes 0, 1, 1 -> 1; row 2: votes 2, 0, 2 -> 2
    np.testing.assert_array_equal(majority_vote(probs), [0, 1, 2])
    # a 1-1 tie goes to the higher mean probability ...
    tie = np.stack([np.array([[0.6, 0.4, 0.0]]), np.array([[0.1, 0.9, 0.0]])])
    assert majority_vote(tie)[0] == 1
    # ... and an exact tie of that to the lowest class index
    exact = np.stack([np.array([[0.0, 0.6, 0.4]]), np.array([[0.0, 0.4, 0.6]])])
    assert majority_vote(exact)[0] == 1
    np.testing.assert_array_equal(combine(probs, "vote"), np.eye(3)[[0, 1, 2]])


def test_combination_inputs_are_checked():
    probs = random_probs(2, 5)
    with pytest.raises(ValueError, match="one member"):
        mean_probabilities(probs[0])
    with pytest.raises(ValueError, match="logits"):
        mean_probabilities(np.log(probs) * 3)
    with pytest.raises(ValueError, match="simplex_weights"):
        weighted_probabilities(probs, [1.0, 1.0])
    with pytest.raises(ValueError, match="one entry per member"):
        weighted_probabilities(probs, [1.0])
    with pytest.raises(ValueError, match="needs weights"):
        combine(probs, "de")
    with pytest.raises(ValueError, match="unknown ensemble method"):
        combine(probs, "median")
    with pytest.raises(ValueError, match="labels"):
        negative_log_likelihood(probs[0], np.array([0, 1, 2]))


def test_simplex_weights():
    np.testing.assert_allclose(simplex_weights([1.0, 3.0]), [0.25, 0.75])
    np.testing.assert_allclose(simplex_weights([0.0, 0.0, 0.0]), [1 / 3] * 3)  # the all-zero corner
    np.testing.assert_allclose(simplex_weights([[1.0, 0.0], [1.0, 0.0]]), [[0.5, 0.5], [0.5, 0.5]])  # columns
    np.testing.assert_allclose(simplex_weights([2.0, 6.0]), simplex_weights([0.5, 1.5]))  # a ray, one weight
    with pytest.raises(ValueError, match=">= 0"):
        simplex_weights([0.5, -0.1])


# -- the DE objective and the search -------------------------------------------------------------------

def test_objective_matches_its_definition_and_is_vectorised():
    probs, y = planted(n=60)
    raw = np.array([0.2, 0.9, 0.4])
    mix = weighted_probabilities(probs, simplex_weights(raw))
    assert ensemble_objective(raw, probs, y, "nll") == pytest.approx(negative_log_likelihood(mix, y))
    assert ensemble_objective(raw, probs, y, "error") == pytest.approx(float((mix.argmax(1) != y).mean()))
    population = np.random.default_rng(0).random((3, 5))
    for objective in ("nll", "error"):
        got = ensemble_objective(population, probs, y, objective)
        want = [ensemble_objective(population[:, s], probs, y, objective) for s in range(5)]
        np.testing.assert_allclose(got, want)
    with pytest.raises(ValueError, match="unknown objective"):
        ensemble_objective(raw, probs, y, "accuracy")


@pytest.mark.parametrize("objective", ["nll", "error"])
def test_de_weights_on_the_simplex_and_reproducible(objective):
    probs, y = random_probs(4, 120, seed=3), np.random.default_rng(3).integers(0, K, 120)
    w = differential_evolution_weights(probs, y, split="PublicTest", seed=5, objective=objective)
    assert w.shape == (4,) and (w >= 0).all() and w.sum() == pytest.approx(1.0, abs=1e-12)
    again = differential_evolution_weights(probs, y, split="PublicTest", seed=5, objective=objective)
    np.testing.assert_array_equal(w, again)


def test_de_puts_the_weight_on_the_member_that_knows():
    probs, y = planted()
    w = differential_evolution_weights(probs, y, split="PublicTest", seed=0)
    assert w.argmax() == 1 and w[1] > 0.8, w
    # its NLL is no worse than any grid point of the simplex (it found the optimum region)
    grid = np.random.default_rng(0).dirichlet(np.ones(3), 300)
    assert ensemble_objective(w, probs, y) <= ensemble_objective(grid.T, probs, y).min() + 1e-9
    w_err = differential_evolution_weights(probs, y, split="PublicTest", seed=0, objective="error")
    good_error = float((probs[1].argmax(1) != y).mean())
    assert ensemble_objective(w_err, probs, y, "error") <= good_error


@pytest.mark.parametrize("split", ["PrivateTest", "privatetest", "test", "Private_Test"])
def test_fitting_on_the_test_split_is_refused(split):
    probs, y = planted(n=50)
    with pytest.raises(TestSplitFitError, match="PublicTest") as info:
        differential_evolution_weights(probs, y, split=split)
    assert "only report PrivateTest" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_the_split_must_be_named():
    probs, y = planted(n=50)
    with pytest.raises(TypeError):
        differential_evolution_weights(probs, y)  # noqa -- split is a required keyword
    with pytest.raises(ValueError, match="split must name"):
        differential_evolution_weights(probs, y, split="")


# -- diagnostics -------------------------------------------------------------------------------------

def test_error_correlation_measures_shared_errors():
    y = np.zeros(8, dtype=np.int64)
    right, wrong = np.array([0.9, 0.1]), np.array([0.1, 0.9])
    a = np.array([right, right, right, right, wrong, wrong, right, right])
    same = a.copy()
    other = np.array([wrong, wrong, right, right, right, right, right, right])
    corr = error_correlation(np.stack([a, same, other]), y)
    assert corr[0, 1] == pytest.approx(1.0)
    errors = np.array([[0, 0, 0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0]], float)
    assert corr[0, 2] == pytest.approx(np.corrcoef(errors)[0, 1])


def test_ambiguity_decomposition_is_exact():
    probs, y = random_probs(3, 40, seed=4), np.random.default_rng(4).integers(0, K, 40)
    for weights in (None, np.array([0.5, 0.3, 0.2])):
        d = ambiguity_decomposition(probs, y, weights)
        assert d["ensemble_brier"] == pytest.approx(d["mean_member_brier"] - d["diversity"])
        assert d["diversity"] > 0


def test_objective_on_simplex():
    assert simplex_grid(2, 4).shape == (5, 2)
    assert simplex_grid(3, 4).shape == (15, 3)
    np.testing.assert_allclose(simplex_grid(3, 7).sum(1), 1.0)
    probs, y = planted(n=40)
    w, values = objective_on_simplex(probs, y, "nll", resolution=10)
    assert values.shape == (len(w),)
    np.testing.assert_allclose(values[5], ensemble_objective(w[5], probs, y))
    with pytest.raises(ValueError, match="2 or 3"):
        objective_on_simplex(random_probs(4, 5), np.zeros(5, dtype=np.int64))


def test_last_checkpoints(tmp_path):
    for e in (1, 2, 3, 10):
        (tmp_path / f"epoch_{e:03d}.pt").write_bytes(b"")
    assert [p.name for p in last_checkpoints(tmp_path, 2)] == ["epoch_003.pt", "epoch_010.pt"]
    with pytest.raises(ValueError, match="positive"):
        last_checkpoints(tmp_path, 0)


# -- runs: members, the results file and the command line --------------------------------------------

@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory):
    """Two quick-profile runs of the tiny-densenet-demo recipe (seeds 0 and 1) on synthetic faces."""
    from ferlib.data.synthetic import make_synthetic_faces
    from ferlib.train.recipes import get_recipe
    from ferlib.train.results import run_recipe

    root = tmp_path_factory.mktemp("ensemble_runs")
    data = make_synthetic_faces(n_per_class=40, seed=0)
    recipe = get_recipe("tiny-densenet-demo")
    torch.set_num_threads(1)
    for seed in (0, 1):
        run_recipe(recipe, dataset=data, profile="quick", device="cpu", seed=seed, precision="fp32",
                   run_dir=root / f"{recipe.name}-quick-seed{seed}", results_path=root / f"r{seed}.json",
                   progress=False)
    return root


@pytest.fixture
def no_data(monkeypatch):
    """No FER-2013: the CLI evaluates on the synthetic faces the runs were trained on."""
    if (ROOT / "data").is_dir():
        pytest.skip("./data exists, so the CLI would find FER-2013")
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)


def test_member_probabilities_use_the_checkpoints_own_evaluation(tiny_runs):
    from ferlib.data.synthetic import make_synthetic_faces
    from ferlib.train.checkpoint import load_model
    from ferlib.jobs.ensembles import evaluation_splits, load_member, member_probabilities

    data = make_synthetic_faces(n_per_class=20, seed=1)
    run = tiny_runs / "tiny-densenet-demo-quick-seed0"
    member = load_member(run, last_k=2)
    assert [p.name for p in member.checkpoints] == ["epoch_001.pt", "epoch_002.pt"]
    splits = evaluation_splits(data, 5)
    probs, seconds = member_probabilities(member, splits)
    test = splits["PrivateTest"]
    want = np.mean([load_model(p).predict_proba(test.pixels) for p in member.checkpoints], 0)
    np.testing.assert_allclose(probs["PrivateTest"], want, rtol=1e-5, atol=1e-6)
    assert set(seconds) == {"PublicTest", "PrivateTest"}


def test_cli_writes_a_complete_results_file(tiny_runs, no_data, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tiny_runs))
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path))
    seed1 = tiny_runs / "tiny-densenet-demo-quick-seed1"
    rc = main(["ensemble", "tiny-densenet-demo", str(seed1), "--method", "de", "--tta", "flip",
               "--device", "cpu", "--name", "pair"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "smoke test" in out and "SYNTHETIC" in out
    path = tmp_path / "local" / "quick" / "ensembles" / "pair.json"  # yours, and quick: never beside real results
    res = json.loads(path.read_text())
    assert res["method"] == "de" and res["fitted_on"] == "PublicTest" and res["objective"] == "nll"
    assert len(res["weights"]) == 2 and sum(res["weights"]) == pytest.approx(1.0)
    assert [m["name"] for m in res["members"]] == ["tiny-densenet-demo-quick-seed0", "tiny-densenet-demo-quick-seed1"]
    assert res["tta"]["mode"] == "flip" and res["tta"]["views"] == 2
    for split in ("PublicTest", "PrivateTest"):
        m = res["metrics"][split]
        assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "nll", "n"} <= set(m)
        assert np.sum(m["confusion_matrix"]) == m["n"] == res["data"][split]
        assert set(res["member_metrics"]["tiny-densenet-demo-quick-seed0"][split]) >= {"accuracy", "confusion_matrix"}
    assert res["data"]["eval_per_class"] == 10  # the recipe's quick budget
    assert res["best_member"]["chosen_on"] == "PublicTest"
    assert res["synthetic"] is True and res["profile"] == "quick"
    prov = res["provenance"]
    assert prov["git_sha"] and prov["device"] == "cpu" and "torch" in prov["versions"]
    assert res["cost"]["forward_passes_per_image"] == 4  # 2 members x 2 views


def test_cli_last_k_vote(tiny_runs, no_data, tmp_path):
    rc = main(["ensemble", str(tiny_runs / "tiny-densenet-demo-quick-seed0"), "--last-k", "5", "--method", "vote",
               "--device", "cpu", "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    (path,) = tmp_path.glob("*.json")
    res = json.loads(path.read_text())
    assert res["last_k"] == 5 and res["members"][0]["epochs"] == [1, 2]  # the run has two epochs
    assert res["weights"] is None and "tie" in res["tie_rule"] and res["metrics"]["PrivateTest"]["nll"] is None


def test_cli_missing_checkpoint_is_one_line_with_status_2(tiny_runs, tmp_path):
    empty = tmp_path / "not-trained"
    empty.mkdir()
    seed0 = tiny_runs / "tiny-densenet-demo-quick-seed0"
    proc = subprocess.run([sys.executable, "-m", "ferlib", "ensemble", str(seed0), str(empty)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no checkpoint" in lines[0], proc.stderr
    assert str(empty) in lines[0] and "Traceback" not in proc.stderr


def test_cli_refuses_members_with_different_classes(tiny_runs, tmp_path, capsys):
    other = tmp_path / "renamed-classes"
    other.mkdir()
    ckpt = torch.load(tiny_runs / "tiny-densenet-demo-quick-seed1" / "best.pt", weights_only=True)
    ckpt["class_names"] = ["contempt"] + list(ckpt["class_names"][1:])
    torch.save(ckpt, other / "best.pt")
    assert main(["ensemble", str(tiny_runs / "tiny-densenet-demo-quick-seed0"), str(other)]) == 2
    err = capsys.readouterr().err
    assert "same class set" in err and "contempt" in err


def test_cli_unknown_member_names_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path))
    assert main(["ensemble", "no-such-recipe"]) == 2
    assert "no run folder, checkpoint or trained run" in capsys.readouterr().err
    assert main(["ensemble", "wide-densenet"]) == 2  # a recipe never trained here, nor committed
    assert "python -m ferlib train wide-densenet" in capsys.readouterr().err


def test_members_trained_on_other_data_are_refused(tiny_runs):
    from ferlib.data.dataset import FERDataset
    from ferlib.jobs.ensembles import EnsembleError, check_compatible, load_member

    member = load_member(tiny_runs / "tiny-densenet-demo-quick-seed0")
    real_looking = FERDataset(pixels=np.zeros((7, 48, 48), np.uint8), labels=np.arange(7), usage=np.array(
        ["PublicTest"] * 7), rows=np.arange(7), source="fer2013.csv", format="csv", synthetic=False)
    with pytest.raises(EnsembleError, match="synthetic faces but FER-2013 was found"):
        check_compatible([member], real_looking)
    assert ens.FIT_SPLIT == "PublicTest" and ens.TEST_SPLIT == "PrivateTest"


def test_committed_models_are_members_and_last_k_says_it_needs_epoch_checkpoints(tmp_path, monkeypatch):
    """A fresh clone has no runs/, only the kit's committed models: they are members (by file or by recipe)."""
    from ferlib.jobs.ensembles import EnsembleError, load_member

    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path))  # no run folders
    model = ROOT / "models" / "densenet-bc-60min-cpu-2threads.pt"
    m = load_member(model)
    assert m.name == "densenet-bc-60min-cpu-2threads" and m.checkpoints == [model]
    assert not m.is_quick and m.synthetic is False and m.profile == "60-min budget"
    by_recipe = load_member("densenet-bc-center")  # its largest-budget trained run: the committed model
    assert by_recipe.checkpoints == [ROOT / "models" / "densenet-bc-center-60min-cpu-2threads.pt"]
    with pytest.raises(EnsembleError, match="epoch checkpoints"):
        load_member(model, last_k=5)


def test_evaluate_ensemble_and_naming(tiny_runs):
    from ferlib.data.synthetic import make_synthetic_faces
    from ferlib.jobs.ensembles import (EnsembleError, collect_probabilities, default_eval_per_class,
                                            default_name, evaluate_ensemble, load_member, results_path_for)

    members = [load_member(tiny_runs / f"tiny-densenet-demo-quick-seed{s}") for s in (0, 1)]
    assert default_eval_per_class(members) == 10 and all(m.is_quick for m in members)
    assert default_name(members, "de", "flip", 5) == ("tiny-densenet-demo-quick-seed0+tiny-densenet-demo-quick-seed1"
                                                      "--de-tta-flip-last5")
    assert results_path_for("x", members).parent.name == "ensembles"
    assert results_path_for("x", members).parent.parent.name == "quick"
    inputs = collect_probabilities(members + [load_member(tiny_runs / "tiny-densenet-demo-quick-seed0")],
                                   make_synthetic_faces(n_per_class=20, seed=2), eval_per_class=5)
    assert inputs.names[2] == "tiny-densenet-demo-quick-seed0 (copy 2)"  # the same run twice stays two members
    for method in ("mean", "vote", "de"):
        ev = evaluate_ensemble(inputs, method)
        want = combine(inputs.probs["PrivateTest"], method, ev["weights"] if method == "de" else None)
        assert ev["metrics"]["PrivateTest"]["accuracy"] == pytest.approx(
            float((want.argmax(1) == inputs.labels["PrivateTest"]).mean()))
        assert ev["best_member"]["chosen_on"] == "PublicTest"
    with pytest.raises(EnsembleError, match="unknown ensemble method"):
        evaluate_ensemble(inputs, "median")


def test_ensemble_figures():
    from matplotlib.figure import Figure

    from ferlib.viz import ensemble_plots as eplots

    probs, y = planted(n=60)
    w2, nll2 = objective_on_simplex(probs[:2], y, "nll", 20)
    _, err2 = objective_on_simplex(probs[:2], y, "error", 20)
    fig = eplots.objective_curves(w2, {"nll": nll2, "error": err2}, ["a", "b"], marks={"DE": [0.3, 0.7]}, tag="t")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    w3, nll3 = objective_on_simplex(probs, y, "nll", 10)
    _, err3 = objective_on_simplex(probs, y, "error", 10)
    fig = eplots.objective_triangles(w3, {"nll": nll3, "error": err3}, ["a", "b", "c"], marks={"DE": [0.2, 0.5, 0.3]})
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # two panels and their colour bars
    fig = eplots.correlation_heatmap(error_correlation(probs, y), ["a", "b", "c"])
    assert "n/a" in [t.get_text() for t in fig.axes[0].texts]  # the member that never errs
    with pytest.raises(ValueError, match="points of the simplex"):
        eplots.objective_triangles(w2, {"nll": nll2}, ["a", "b", "c"])
    with pytest.raises(ValueError, match="shape"):
        eplots.correlation_heatmap(np.eye(2), ["a", "b", "c"])


def test_triangle_of_a_flat_objective():
    from ferlib.viz import ensemble_plots as eplots

    w = simplex_grid(3, 6)
    flat = np.full(len(w), 0.5)  # e.g. three members that make the same predictions
    fig = eplots.objective_triangles(w, {"error": flat}, ["a", "b", "c"])
    assert len(fig.axes) == 2
