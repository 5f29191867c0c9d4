"""One trainer for every chapter: device-resident batches, pluggable criterion, resume.

The input side is :class:`~ferlib.data.batches.DeviceBatchSource` (whole split on
the device as uint8, normalisation and augmentation per batch on the device), so
the step has no per-sample Python.  On CUDA the forward runs under bf16 autocast
with ``channels_last`` tensors and a fused optimiser; on the CPU in float32 (seeded
CPU runs are bitwise reproducible).

Each epoch: train, evaluate PublicTest (model selection), save ``epoch_NNN.pt``
(the last five are kept for the checkpoint ensemble), ``best.pt`` when PublicTest
accuracy improves, and ``latest.pt`` (resume).  ``latest.pt`` is also written
mid-epoch every ``checkpoint_every_steps`` steps / ``checkpoint_interval_s``
seconds, so a run killed mid-epoch continues where it was when started again.
At the end the epoch selected on PublicTest is evaluated on PrivateTest -- the test
split is never used to choose anything.

The loss is a :class:`~ferlib.losses.base.Criterion` receiving
``(logits, features, labels)``; it may own parameters (added to the optimiser with
their own settings) and update state after each step (``after_step``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from ..data.batches import DeviceBatchSource
from ..data.dataset import FERDataset, stratified_subset
from ..data.normalize import fit_normalizer
from ..data.transforms import get_augment
from ..evaluate.metrics import accuracy, classification_metrics, predict
from ..losses.base import Criterion
from ..models.registry import build_model
from ..profiles import get_profile
from .checkpoint import load_checkpoint_dict, model_payload, prune_epoch_checkpoints, save_atomic
from .recipes import Recipe

KEEP_LAST = 5


class TrainingInterrupted(RuntimeError):
    """Raised by ``stop_after_steps`` to simulate a killed run (tests, demos)."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def build_criterion(recipe: Recipe, num_classes: int, feature_dim: int) -> Criterion:
    if recipe.criterion == "ce":
        return Criterion()
    if recipe.criterion == "center":
        from ..losses.center import SoftmaxCenterLoss

        return SoftmaxCenterLoss(num_classes, feature_dim, **recipe.criterion_kwargs)
    raise KeyError(f"unknown criterion {recipe.criterion!r} in recipe {recipe.name!r}")


def build_optimizer(recipe: Recipe, model: nn.Module, criterion: Criterion, device: torch.device):
    groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    groups += [dict(g) for g in criterion.extra_param_groups()]
    for g in groups:
        g.pop("name", None)
    fast = {"fused": True} if device.type == "cuda" else {"foreach": True}
    if recipe.optimizer == "sgd":
        make = lambda **kw: torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum,  # noqa: E731
                                            nesterov=recipe.nesterov, weight_decay=recipe.weight_decay, **kw)
    elif recipe.optimizer == "adam":
        make = lambda **kw: torch.optim.Adam(groups, lr=recipe.lr, weight_decay=recipe.weight_decay, **kw)  # noqa: E731
    else:
        raise KeyError(f"unknown optimizer {recipe.optimizer!r}")
    try:
        return make(**fast)
    except (RuntimeError, TypeError, ValueError):  # fused unsupported for this torch / dtype
        return make()


def build_scheduler(recipe: Recipe, optimizer):
    if recipe.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=0.1, patience=recipe.plateau_patience,
            threshold=recipe.plateau_threshold, threshold_mode="rel", min_lr=recipe.min_lr)
    if recipe.schedule == "constant":
        return None
    raise KeyError(f"unknown schedule {recipe.schedule!r}")


@dataclass
class RunState:
    """What a resume restores besides the modules: position, running sums, history, selection."""

    epoch: int = 0
    next_batch: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    term_sums: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    history: list = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = -1.0
    epochs_without_improvement: int = 0
    steps: int = 0


@dataclass
class PreparedData:
    train: FERDataset
    val: FERDataset
    test: FERDataset
    class_names: tuple
    synthetic: bool
    description: dict


def prepare_data(recipe: Recipe, dataset: FERDataset, profile: str, seed: int) -> PreparedData:
    budget = recipe.budget(profile)
    parts = [stratified_subset(dataset.split(s), n, seed + i)
             for i, (s, n) in enumerate((("Training", budget.train_per_class), ("PublicTest", budget.eval_per_class),
                                         ("PrivateTest", budget.eval_per_class)))]
    desc = {"source": dataset.source, "format": dataset.format, "tag": dataset.tag, "synthetic": dataset.synthetic,
            "Training": len(parts[0]), "PublicTest": len(parts[1]), "PrivateTest": len(parts[2])}
    return PreparedData(*parts, class_names=tuple(dataset.class_names), synthetic=dataset.synthetic, description=desc)


class Trainer:
    """Train one recipe on prepared data; see the module docstring."""

    def __init__(self, recipe: Recipe, data: PreparedData, *, profile: str | None = None, seed: int = 0,
                 device=None, run_dir: str | Path = "runs/run", progress: bool = True,
                 checkpoint_every_steps: int | None = None, checkpoint_interval_s: float = 300.0,
                 epochs: int | None = None):
        self.recipe, self.data, self.seed = recipe, data, seed
        self.profile = get_profile(profile)
        self.device = resolve_device(device)
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.checkpoint_every_steps = checkpoint_every_steps
        self.checkpoint_interval_s = checkpoint_interval_s
        self.epochs = epochs if epochs is not None else recipe.budget(self.profile).epochs
        cuda = self.device.type == "cuda"
        self.autocast_dtype = torch.bfloat16 if cuda else None

        torch.manual_seed(seed)
        self.normalizer = fit_normalizer(recipe.normalization, data.train.pixels)
        aug = get_augment(recipe.augment, **recipe.augment_kwargs)
        self.augment = replace(aug, out_size=recipe.input_size)
        self.in_channels = self.augment.channels
        num_classes = len(data.class_names)
        self.model = build_model(recipe.model, num_classes=num_classes, in_channels=self.in_channels,
                                 **recipe.model_kwargs).to(self.device)
        if cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = build_criterion(recipe, num_classes, self.model.feature_dim).to(self.device)
        self.optimizer = build_optimizer(recipe, self.model, self.criterion, self.device)
        self.scheduler = build_scheduler(recipe, self.optimizer)
        common = dict(device=self.device, normalize=self.normalizer, channels_last=cuda)
        self.train_source = DeviceBatchSource(data.train.pixels, data.train.labels, batch_size=recipe.batch_size,
                                              augment=self.augment, shuffle=True, seed=seed, **common)
        eval_bs = max(256, recipe.batch_size)
        self.val_source = DeviceBatchSource.for_eval(data.val.pixels, data.val.labels, batch_size=eval_bs,
                                                     augment=self.augment, **common)
        self.test_source = DeviceBatchSource.for_eval(data.test.pixels, data.test.labels, batch_size=eval_bs,
                                                      augment=self.augment, **common)
        self.state = RunState()

    # -- checkpoints ----------------------------------------------------------------------
    def _identity(self) -> dict:
        return {"recipe": self.recipe.to_dict(), "profile": self.profile, "seed": self.seed,
                "data": self.data.description, "epochs": self.epochs}

    def _model_payload(self, **extra) -> dict:
        return model_payload(self.model, model_name=self.recipe.model,
                             model_kwargs={"num_classes": len(self.data.class_names), "in_channels": self.in_channels,
                                           **self.recipe.model_kwargs},
                             normalizer=self.normalizer, normalization=self.recipe.normalization,
                             input_size=self.recipe.input_size, in_channels=self.in_channels,
                             class_names=self.data.class_names, recipe=self.recipe.to_dict(), **extra)

    def save_resume(self) -> None:
        s = self.state
        payload = self._model_payload(
            kind="resume", identity=self._identity(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict() if self.scheduler is not None else {},
            criterion={k: v.detach().cpu() for k, v in self.criterion.state_dict().items()},
            state={**s.__dict__, "term_sums": dict(s.term_sums)})
        payload["kind"] = "resume"
        save_atomic(payload, self.run_dir / "latest.pt")

    def try_resume(self) -> bool:
        path = self.run_dir / "latest.pt"
        if not path.exists():
            return False
        ckpt = load_checkpoint_dict(path)
        if ckpt.get("identity") != self._identity():
            raise ValueError(f"{path} belongs to a different run (recipe, profile, seed, data or epochs differ); "
                             f"start fresh with --fresh (the old run folder is kept, renamed) or use another --run-dir")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.criterion.load_state_dict(ckpt["criterion"])
        self.state = RunState(**ckpt["state"])
        if self.progress:
            print(f"[ferlib] resuming {self.recipe.name} from {path}: epoch {self.state.epoch}, "
                  f"batch {self.state.next_batch}")
        return True

    # -- training -------------------------------------------------------------------------
    def _train_epoch(self, epoch: int, stop_after_steps: int | None) -> None:
        s, model, crit, opt = self.state, self.model, self.criterion, self.optimizer
        model.train()
        crit.on_epoch_start(epoch, opt)
        n_batches = len(self.train_source)
        # Running sums live on the device: no host sync inside the loop.
        loss_sum = torch.tensor(s.loss_sum, device=self.device, dtype=torch.float64)
        term_sums = {k: torch.tensor(v, device=self.device, dtype=torch.float64) for k, v in s.term_sums.items()}
        bar = None
        if self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_batches, initial=s.next_batch, desc=f"{self.recipe.name} epoch {epoch + 1}/{self.epochs}",
                       leave=False, unit="batch")
        t0 = time.perf_counter()
        last_save = time.perf_counter()
        for k, (x, y) in enumerate(self.train_source.iter_from(epoch, s.next_batch), start=s.next_batch):
            with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype or torch.bfloat16,
                                enabled=self.autocast_dtype is not None):
                logits, feats = model.forward_with_features(x)
            loss = crit(logits.float(), feats.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            crit.after_step(feats.detach().float(), y)
            bs = y.shape[0]
            loss_sum += loss.detach().double() * bs
            for name, value in crit.last_terms.items():
                term_sums[name] = term_sums.get(name, torch.zeros((), device=self.device, dtype=torch.float64)) \
                    + torch.as_tensor(value, device=self.device).double() * bs
            s.seen += bs
            s.steps += 1
            s.next_batch = k + 1
            if bar is not None:
                bar.update(1)
            due = (self.checkpoint_every_steps and s.steps % self.checkpoint_every_steps == 0) or \
                  (time.perf_counter() - last_save > self.checkpoint_interval_s)
            if due and s.next_batch < n_batches:
                s.loss_sum, s.term_sums = float(loss_sum), {n: float(v) for n, v in term_sums.items()}
                s.train_seconds += time.perf_counter() - t0
                t0 = last_save = time.perf_counter()
                self.save_resume()
            if stop_after_steps is not None and s.steps >= stop_after_steps:
                if bar is not None:
                    bar.close()
                raise TrainingInterrupted(f"stopped after {s.steps} steps (simulated kill)")
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        s.train_seconds += time.perf_counter() - t0
        s.loss_sum, s.term_sums = float(loss_sum), {n: float(v) for n, v in term_sums.items()}
        if bar is not None:
            bar.close()

    def _evaluate(self, source) -> tuple[torch.Tensor, torch.Tensor]:
        return predict(self.model, source, autocast_dtype=self.autocast_dtype)

    def fit(self, *, resume: bool = True, stop_after_steps: int | None = None) -> RunState:
        """Train for the budget's epochs (continuing a saved run when ``resume``)."""
        if resume:
            self.try_resume()
        s = self.state
        patience = self.recipe.early_stopping_patience
        while s.epoch < self.epochs:
            if patience is not None and s.epochs_without_improvement >= patience:
                break
            epoch = s.epoch
            epoch_start_seconds = s.train_seconds
            self._train_epoch(epoch, stop_after_steps)
            n = len(self.data.train)
            train_loss = s.loss_sum / n
            terms = {k: v / n for k, v in s.term_sums.items()}
            logits, labels = self._evaluate(self.val_source)
            val_acc = accuracy(logits.numpy(), labels.numpy())
            val_loss = float(torch.nn.functional.cross_entropy(logits, labels).item()) if labels.ndim == 1 else None
            seconds = s.train_seconds - epoch_start_seconds
            s.history.append({"epoch": epoch + 1, "train_loss": train_loss, "train_terms": terms,
                              "lr": self.optimizer.param_groups[0]["lr"], "val_accuracy": val_acc, "val_loss": val_loss,
                              "train_seconds": seconds, "images_per_s": n / seconds if seconds > 0 else None})
            if self.scheduler is not None:
                self.scheduler.step(train_loss)
            improved = val_acc > s.best_val_accuracy
            if improved:
                s.best_val_accuracy, s.best_epoch, s.epochs_without_improvement = val_acc, epoch + 1, 0
            else:
                s.epochs_without_improvement += 1
            payload = self._model_payload(epoch=epoch + 1, val_accuracy=val_acc)
            save_atomic(payload, self.run_dir / f"epoch_{epoch + 1:03d}.pt")
            prune_epoch_checkpoints(self.run_dir, KEEP_LAST)
            if improved:
                save_atomic(payload, self.run_dir / "best.pt")
            s.epoch, s.next_batch, s.loss_sum, s.term_sums = epoch + 1, 0, 0.0, {}
            self.save_resume()
            if self.progress:
                print(f"[{self.recipe.name}] epoch {epoch + 1}/{self.epochs}  train loss {train_loss:.4f}  "
                      f"PublicTest acc {val_acc:.4f}  lr {s.history[-1]['lr']:.2g}  {seconds:.1f} s")
        return s

    # -- final evaluation -------------------------------------------------------------------
    def evaluate_selected(self) -> dict:
        """Metrics of the epoch selected on PublicTest, and of the last-five checkpoint ensemble."""
        names = self.data.class_names
        best = load_checkpoint_dict(self.run_dir / "best.pt")
        self.model.load_state_dict(best["model"])
        out = {"selected_epoch": best["epoch"], "metrics": {}}
        for split, source in (("PublicTest", self.val_source), ("PrivateTest", self.test_source)):
            logits, labels = self._evaluate(source)
            out["metrics"][split] = classification_metrics(torch.softmax(logits, 1).numpy(), labels.numpy(), names)
        # Checkpoint ensemble (densenet §IV-C): average softmax of the last five epochs.
        files = sorted(self.run_dir.glob("epoch_*.pt"))[-KEEP_LAST:]
        probs = {"PublicTest": 0, "PrivateTest": 0}
        for f in files:
            self.model.load_state_dict(load_checkpoint_dict(f)["model"])
            for split, source in (("PublicTest", self.val_source), ("PrivateTest", self.test_source)):
                logits, labels = self._evaluate(source)
                probs[split] = probs[split] + torch.softmax(logits, 1).numpy() / len(files)
        out["ensemble_last5"] = {"epochs": [int(f.stem.split("_")[1]) for f in files]}
        for split, source in (("PublicTest", self.val_source), ("PrivateTest", self.test_source)):
            labels = source.labels.cpu().numpy()
            out["ensemble_last5"][split] = classification_metrics(probs[split], labels, names)["accuracy"]
        self.model.load_state_dict(best["model"])
        return out


def train_images_per_s(state: RunState) -> float | None:
    return state.seen / state.train_seconds if state.train_seconds > 0 else None

