"""ferlib.jobs.tables.bench_table: a bench/cpu_paths.py results file as a table of ratios measured in one run."""
from __future__ import annotations

import json
import math

import pytest

from ferlib.jobs import tables


def _bench_file(tmp_path, paths_):
    data = {"batch": 32, "steps": 2, "rounds": 2, "isolation": "a fresh process per path and round",
            "models": {"vgg13-o-sl": {"2": {"forward_gflop_per_image": 0.3, **paths_}}},
            "matmul_peak_gflops": {"2": {"fp32": 100.0, "bf16": 400.0}},
            "provenance": {"cpu_model": "Test CPU", "git_sha": "0123456789abcdef"}}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    return path


def test_ratios_are_to_the_same_models_fp32_path(tmp_path):
    path = _bench_file(tmp_path, {"fp32": {"images_per_s": 50.0, "fraction_of_peak": 0.5},
                                  "bf16+cl": {"images_per_s": 160.0, "fraction_of_peak": 0.4,
                                              "rounds": [171.0, 150.0, 160.0]}})
    t = tables.bench_table(path)
    assert (t.loc[("vgg13-o-sl", 2, "bf16+cl"), "slowest round"], t.loc[("vgg13-o-sl", 2, "bf16+cl"), "fastest round"]) \
        == (150.0, 171.0)
    assert math.isnan(t.loc[("vgg13-o-sl", 2, "fp32"), "slowest round"])  # no rounds recorded: missing, not 0
    assert t.loc[("vgg13-o-sl", 2, "bf16+cl"), "× fp32"] == pytest.approx(3.2)
    assert t.loc[("vgg13-o-sl", 2, "fp32"), "× fp32"] == 1.0
    assert t.loc[("vgg13-o-sl", 2, "bf16+cl"), "fraction of matmul peak"] == 0.4
    assert "forward_gflop_per_image" not in t.index.get_level_values("path")  # a number, not a path
    label = tables.bench_label(path)
    assert "Test CPU" in label and "batch 32" in label and "01234567" in label


def test_no_fp32_path_gives_no_ratio_and_a_missing_file_gives_none(tmp_path):
    t = tables.bench_table(_bench_file(tmp_path, {"bf16": {"images_per_s": 10.0}}))
    assert t.loc[("vgg13-o-sl", 2, "bf16"), "× fp32"] is None
    assert tables.bench_table(tmp_path / "absent.json") is None


def test_the_bf16_bound_is_the_peak_ratio_over_fp32s_share_of_its_peak(tmp_path):
    # peaks 100 / 400 GFLOP/s: bf16 could be 4x fp32 at most if fp32 ran at its peak; at half of it, 8x
    path = _bench_file(tmp_path, {"fp32": {"images_per_s": 50.0, "fraction_of_peak": 0.5},
                                  "bf16+cl": {"images_per_s": 160.0, "fraction_of_peak": 0.4}})
    assert tables.bf16_bound(path) == {("vgg13-o-sl", 2): pytest.approx(8.0)}
    assert tables.bf16_bound(_bench_file(tmp_path, {"bf16": {"images_per_s": 10.0}})) == {}  # no fp32 arm
