"""The CPU fast path, measured: one training step of each paper model, every precision/layout, side by side.

For each model at its recipe's input size (batch 128), in one run, interleaved rounds:

* ``fp32``            -- float32, contiguous (the kit's path before the bf16 default)
* ``fp32+cl``         -- float32, channels_last
* ``bf16``            -- bf16 autocast (oneDNN's bf16 kernels: AVX512-BF16 / AMX where the CPU has them)
* ``bf16+cl``         -- bf16 autocast + channels_last (ferlib's default where ``cpu_has_fast_bf16()``)
* ``bf16+cl+compile`` -- the same under ``torch.compile`` (inductor), only with ``--compile`` (minutes to compile)

and the matrix-product peak (2048^2 float32 and bf16) measured in the same run, so the
achieved GFLOP/s of each path (images/s x 3 x forward FLOPs per image) can be read as a
fraction of what the matrix units do.  Writes ``results/bench_cpu_paths.json``.

Each path is timed in a **fresh process** per round (the rounds alternate the order of the
paths): in one process, running one path slows the next -- fp32 fell from about 185 img/s
alone to 106-139 img/s after the bf16 paths had run, and bf16 + channels_last from about 440
to 353 after fp32 -- so timing them side by side in one process measured the interference
as much as the paths.  ``--same-process`` restores that mode, to see the effect.

    python bench/cpu_paths.py                     # densenet-bc, 2 threads
    python bench/cpu_paths.py --models densenet,densenet-bc,wide-densenet,wide-densenet-bc --threads 1,2
    python bench/cpu_paths.py --paths fp32,bf16+cl,bf16+cl+compile --out results/bench_cpu_paths_compile.json
    python bench/cpu_paths.py --models vgg13-o-sl,light-base-sl,light-base-s-sl --batch 32 --compile \
        --out results/bench_cpu_paths_ferplus.json   # chapter 08's two networks (FER+, 64x64, 8 classes, Adam)

A name is a recipe (its model, model arguments -- e.g. the input channels of a FER+ row --, input
size, image channels, number of classes and optimiser: SGD with Nesterov momentum, or Adam) or a model
name (42x42, 7 classes, SGD).  EmoNet's rows (chapter 07) time the **fine-tuning** step of their
backbone -- every parameter trained, the grey face stacked to 3 channels at the row's input size,
random BOVW vectors beside it for the ``-bovw`` rows -- with the architecture of the row's weights
but no weights file read (``load_weights=False``: the cost does not depend on the values, and ResNet-50
and Inception-ResNet-v2 weights do not exist offline); ``--frozen`` times their frozen phase instead
(the pretrained block frozen and in evaluation mode, Adam on the rest):

    python bench/cpu_paths.py --models emonet-lite0-pixels,emonet-lite0-bovw,emonet-resnet50-pixels,emonet-irv2-pixels \
        --batch 64 --compile --out results/bench_cpu_paths_emonet.json
    python bench/cpu_paths.py --models emonet-lite0-bovw --batch 64 --frozen --out results/bench_cpu_paths_emonet_frozen.json

Target on a CPU with bf16 kernels (issue 23): VGG13's step at ``bf16+cl`` at
least 3x its ``fp32`` step.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

PATHS = ("fp32", "fp32+cl", "bf16", "bf16+cl")


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(times) / 1e9


class Step:
    def __init__(self, model_name: str, input_size: int, path: str, batch: int, seed: int = 0,
                 model_kwargs: dict | None = None, num_classes: int = 7, optimizer: str = "sgd",
                 in_channels: int = 1, frozen: bool = False):
        from ferlib.models import build_model

        torch.manual_seed(seed)
        self.cl, self.bf16 = "+cl" in path, path.startswith("bf16")
        self.model = build_model(model_name, num_classes=num_classes, in_channels=in_channels, **(model_kwargs or {}))
        self.x = torch.randn(batch, in_channels, input_size, input_size)
        self.y = torch.randint(0, num_classes, (batch,))
        self.side = side_inputs(self.model, batch)  # EmoNet's BOVW vectors beside the image
        if frozen:  # EmoNet's frozen phase: the pretrained block frozen (and in evaluation mode)
            self.model.set_pretrained_frozen(True)
        if self.cl:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if optimizer == "adam" or frozen:
            self.opt = torch.optim.Adam(params, lr=3e-4, foreach=True)
        else:
            self.opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, foreach=True)
        self.forward = torch.compile(self.model) if path.endswith("compile") else self.model

    def __call__(self) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.forward(self.x, **self.side)
        loss = torch.nn.functional.cross_entropy(out.float(), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def side_inputs(model, batch: int) -> dict:
    """Random per-sample side inputs of the shape ``model.side_inputs`` asks for (EmoNet's 2,728-value BOVW)."""
    from ferlib.features.side_inputs import SIDE_INPUTS

    return {name: torch.randn(batch, SIDE_INPUTS[name][0]) for name in getattr(model, "side_inputs", ())}


class WithSideInputs(torch.nn.Module):
    """``model(x)`` with fixed side inputs, for the FLOP counter (which calls ``model(x)``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x, **side_inputs(self.model, x.shape[0]))


def time_in_fresh_process(model_name: str, size: int, path: str, batch: int, steps: int, threads: int,
                          **step_kwargs) -> float:
    """images/s of ``steps`` steps of one path in a new Python process (after 2 warm-up steps)."""
    code = (f"import sys, time, torch; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'bench')!r}); "
            f"torch.set_num_threads({threads}); from cpu_paths import Step; "
            f"s = Step({model_name!r}, {size}, {path!r}, {batch}, **{step_kwargs!r}); s(); s(); t = time.perf_counter(); "
            f"[s() for _ in range({steps})]; print({batch * steps} / (time.perf_counter() - t))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="densenet-bc")
    p.add_argument("--threads", default="2", help="comma-separated thread counts")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=4, help="timed steps per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--compile", action="store_true", help="also time bf16+cl under torch.compile")
    p.add_argument("--paths", default=None,
                   help="comma-separated subset of the paths to time (default: all; fp32 and bf16+cl are always kept "
                        "because the ratio needs them)")
    p.add_argument("--frozen", action="store_true", help="recipes with a frozen phase (EmoNet): time the frozen "
                   "phase's step (pretrained block frozen, Adam) instead of the fine-tuning step")
    p.add_argument("--same-process", action="store_true",
                   help="time every path in this one process (the paths then slow each other down)")
    p.add_argument("--out", default=str(REPO / "results" / "bench_cpu_paths.json"))
    args = p.parse_args(argv)

    from ferlib.data.transforms import get_augment
    from ferlib.models import build_model
    from ferlib.models.summary import count_flops
    from ferlib.train.precision import cpu_has_fast_bf16
    from ferlib.train.recipes import RECIPES
    from ferlib.provenance import record, write_json

    paths = PATHS + (("bf16+cl+compile",) if args.compile else ())
    if args.paths:
        wanted = {w.strip() for w in args.paths.split(",") if w.strip()}
        unknown = wanted - set(PATHS + ("bf16+cl+compile",))
        if unknown:
            p.error(f"unknown path(s) {', '.join(sorted(unknown))}; choose from {', '.join(PATHS)}, bf16+cl+compile")
        paths = tuple(path for path in PATHS + ("bf16+cl+compile",) if path in wanted | {"fp32", "bf16+cl"})
    started = time.time()
    out = {"batch": args.batch, "steps": args.steps, "rounds": args.rounds, "cpu_has_fast_bf16": cpu_has_fast_bf16(),
           "isolation": "one process for all paths" if args.same_process else "a fresh process per path and round",
           "models": {}}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        peak = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
        out.setdefault("matmul_peak_gflops", {})[threads] = peak
        print(f"threads {threads}: matmul peak fp32 {peak['fp32']:.0f} GFLOP/s, bf16 {peak['bf16']:.0f} GFLOP/s")
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            recipe = RECIPES.get(name)
            size = recipe.input_size if recipe else 42
            model_name = recipe.model if recipe else name
            model_kwargs = dict(recipe.model_kwargs) if recipe else {}
            if model_name == "emonet":  # the architecture of the row's weights, no weights file read
                model_kwargs["load_weights"] = False
            channels = get_augment(recipe.augment).channels if recipe else 1
            step_kwargs = {"model_kwargs": model_kwargs,
                           "num_classes": 8 if recipe and recipe.dataset == "ferplus" else 7,
                           "optimizer": recipe.optimizer if recipe else "sgd", "in_channels": channels,
                           "frozen": bool(args.frozen and recipe and recipe.frozen_phase)}
            fwd = count_flops(WithSideInputs(build_model(model_name, num_classes=step_kwargs["num_classes"],
                                                         in_channels=channels, **model_kwargs)), (channels, size, size))
            if args.same_process:
                steps = {path: Step(model_name, size, path, args.batch, **step_kwargs) for path in paths}
                for s in steps.values():  # warm-up (and compilation)
                    s(), s()
            rates = {path: [] for path in paths}
            for r in range(args.rounds):
                for path in (paths if r % 2 == 0 else paths[::-1]):
                    if not args.same_process:
                        rates[path].append(time_in_fresh_process(model_name, size, path, args.batch, args.steps,
                                                                 threads, **step_kwargs))
                        continue
                    t = time.perf_counter()
                    for _ in range(args.steps):
                        steps[path]()
                    rates[path].append(args.batch * args.steps / (time.perf_counter() - t))
            res = {}
            for path in paths:
                ips = statistics.median(rates[path])
                gflops = ips * 3 * fwd / 1e9
                res[path] = {"images_per_s": ips, "rounds": rates[path], "gflops": gflops,
                             "fraction_of_peak": gflops / peak["bf16" if path.startswith("bf16") else "fp32"]}
                print(f"  {name:<18s} {path:<16s} {ips:7.1f} img/s  {gflops:6.1f} GFLOP/s "
                      f"({100 * res[path]['fraction_of_peak']:.1f} % of the {path[:4]} matmul peak)")
            res["ratio_default_over_fp32"] = res["bf16+cl"]["images_per_s"] / res["fp32"]["images_per_s"]
            print(f"  {name:<18s} bf16+cl / fp32 = {res['ratio_default_over_fp32']:.2f}x")
            out["models"].setdefault(name, {})[threads] = {"forward_gflop_per_image": fwd / 1e9, "input_size": size,
                                                          **step_kwargs, **res}
    out["provenance"] = record("cpu", wall_time_s=time.time() - started, command=" ".join(sys.argv))
    write_json(out, args.out)
    print(f"-> {args.out}")
    return out


if __name__ == "__main__":
    main()
