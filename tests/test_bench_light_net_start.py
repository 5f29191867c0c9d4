"""bench/light_net_start.py: each arm changes exactly one thing, and what it records is what ran."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import import_bench



@pytest.fixture(scope="module")
def light_net_start():
    return import_bench("light_net_start")


def test_light_net_dropout_argument_reaches_every_dropout():
    from ferlib.models import build_model

    rates = lambda m: [x.p for x in m.modules() if isinstance(x, torch.nn.Dropout)]  # noqa: E731
    assert rates(build_model("light-net", num_classes=8)) == [0.25] * 4 + [0.5]
    assert rates(build_model("light-net", num_classes=8, dropout=[0.0, 0.0])) == [0.0] * 5  # a list, as from JSON


def test_arms_change_one_thing_each(light_net_start):
    from ferlib.train.recipes import get_recipe

    base = get_recipe("light-base-sl")
    changed = {}
    for arm in light_net_start.ARMS:
        recipe, precision = light_net_start.arm_recipe(base, arm)
        a, b = recipe.to_dict(), base.to_dict()
        changed[arm] = sorted(k for k in a if a[k] != b[k]) + (["precision"] if precision != "auto" else [])
    assert changed == {"base": [], "fp32": ["precision"], "noaug": ["augment"], "nodrop": ["model_kwargs"],
                       "lr10": ["lr"]}
    with pytest.raises(SystemExit, match="unknown arm 'sgd'"):
        light_net_start.arm_recipe(base, "sgd")


def test_prior_entropy(light_net_start):
    assert light_net_start.prior_entropy(np.array([0, 1, 2, 3]), 8) == pytest.approx(math.log(4))
    assert light_net_start.prior_entropy(np.array([5, 5, 5]), 8) == 0.0


@pytest.mark.slow  # two short trainings on synthetic faces: ~15 s
def test_smoke_on_synthetic_faces(light_net_start, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    out = tmp_path / "start.json"
    light_net_start.main(["--arms", "base,nodrop", "--epochs", "1", "--train", "64", "--eval", "16",
                          "--threads", "1", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["data"]["Training"] == 64 and "SYNTHETIC" in saved["data"]["tag"]
    base, nodrop = saved["arms"]["base"], saved["arms"]["nodrop"]
    assert len(base["train_loss"]) == len(base["publictest"]) == 1
    assert nodrop["model_kwargs"]["dropout"] == [0.0, 0.0]
    assert base["train_loss"] != nodrop["train_loss"]  # the change reached the network (same seed, same data)
    assert saved["provenance"]["command"].startswith("python")
