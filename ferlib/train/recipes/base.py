"""The :class:`Recipe` and :class:`Budget` types and the recipe registry.

A recipe says everything a run needs -- model, input pipeline, criterion (a typed
config from :mod:`ferlib.train.criteria`), optimiser, schedule, budgets -- and the
paper's numbers for its table row, so ``python -m ferlib train RECIPE`` reproduces
the row and the results table can put the paper's number beside ours.  One module
per paper in this package registers its rows.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..criteria import CrossEntropyConfig


@dataclass(frozen=True)
class Budget:
    """How much of the data and how many epochs a profile uses (``None`` = the whole split).

    ``batch_size``: overrides the recipe's batch size in this profile (``None`` = the
    recipe's); a quick smoke test of a batch-128 recipe on a few dozen faces needs smaller
    batches to take a step at all.
    """

    epochs: int
    train_per_class: int | None = None
    eval_per_class: int | None = None
    batch_size: int | None = None


@dataclass(frozen=True)
class FrozenPhase:
    """The first epochs of a transfer-learning recipe (EmoNet §5): the model's pretrained block frozen, the
    rest trained with its own optimiser; afterwards everything trains with the recipe's optimiser and schedule
    (:class:`~ferlib.train.schedules.FreezeThenFineTune`).  Constant learning rate, no weight decay unless given.
    ``quick_epochs``: the frozen epochs of the quick profile (a smoke test should reach the switch)."""

    epochs: int
    quick_epochs: int | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0


CLASSIFIERS = ("softmax", "knn")


@dataclass(frozen=True)
class Recipe:
    name: str
    paper: str  # a key of ferlib.bibliography.PAPERS
    row: str  # the table row this reproduces, e.g. "Table II: DenseNet-BC"
    model: str  # key of ferlib.models.registry.MODELS
    model_kwargs: dict = field(default_factory=dict)
    dataset: str = "fer2013"
    input_size: int = 42
    augment: str = "densenet"  # key of ferlib.data.transforms.PRESETS
    augment_kwargs: dict = field(default_factory=dict)
    normalization: str = "pixel"  # "pixel", "channel", "mean" or "image" (ferlib.data.normalize)
    criterion: object = CrossEntropyConfig()  # a config of ferlib.train.criteria
    optimizer: str = "sgd"  # key of ferlib.train.build.OPTIMIZERS
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4  # on every parameter, BatchNorm and biases included (as DenseNet's Torch code)
    batch_size: int = 128
    drop_last: bool = False  # True: floor(N / batch_size) full batches per epoch (DNNRL §4)
    sampler: str = "random"  # "random" or "balanced" (class-balanced batches; ferlib.data.batches.SAMPLERS)
    schedule: str = "plateau"  # key of ferlib.train.schedules.SCHEDULES
    plateau_patience: int = 5
    plateau_threshold: float = 1e-2
    min_lr: float = 1e-5
    plateau_on: str | None = None  # the loss the plateau rule watches: None / "train_loss", or "val_loss" (EmoNet)
    plateau_factor: float | None = None  # the plateau rule's lr multiplier (None = 0.1)
    frozen_phase: FrozenPhase | None = None  # transfer learning: first epochs with the pretrained block frozen
    face_filter: str | None = None  # drop Training faces the detectors reject (ferlib.features.face_filter rule)
    early_stopping_patience: int | None = None  # epochs without a new best of the selection metric
    protocol: str | None = None  # key of ferlib.train.protocols.PROTOCOLS: a rule on the validation loss
    select_on: str = "accuracy"  # the epoch kept as best.pt: best PublicTest "accuracy", or lowest validation "loss"
    classifier: str = "softmax"  # how predictions are made: "softmax" (the head) or "knn" (k-NN on the embedding)
    report_knn: bool = False  # also report k-NN on the embedding beside the softmax head (classifier="softmax")
    knn_metric: str = "euclidean"  # distance of the k-NN readout (ferlib.evaluate.knn.METRICS)
    quick: Budget = Budget(epochs=2, train_per_class=40, eval_per_class=20)
    full: Budget = Budget(epochs=100)
    paper_results: dict = field(default_factory=dict)  # the paper's numbers, in %
    notes: str = ""

    def __post_init__(self):
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"recipe {self.name!r}: classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if self.select_on not in ("accuracy", "loss"):
            raise ValueError(f"recipe {self.name!r}: select_on must be 'accuracy' or 'loss', got {self.select_on!r}")
        if self.plateau_on not in (None, "train_loss", "val_loss"):
            raise ValueError(f"recipe {self.name!r}: plateau_on must be 'train_loss' or 'val_loss', got {self.plateau_on!r}")

    @property
    def uses_knn(self) -> bool:
        """Whether results report a k-NN readout of the embedding (as the headline or beside the softmax)."""
        return self.classifier == "knn" or self.report_knn

    def batch_size_for(self, profile: str) -> int:
        return self.budget(profile).batch_size or self.batch_size

    def budget(self, profile: str) -> Budget:
        return self.quick if profile == "quick" else self.full

    def frozen_epochs_for(self, profile: str | None) -> int:
        """Epochs of the frozen phase in ``profile`` (None: a wall-clock budget, the recipe's own); 0 without one."""
        if self.frozen_phase is None:
            return 0
        quick = self.frozen_phase.quick_epochs
        return quick if profile == "quick" and quick is not None else self.frozen_phase.epochs

    def to_dict(self) -> dict:
        d = asdict(self)
        d["criterion"] = self.criterion.to_dict()
        return d


RECIPES: dict[str, Recipe] = {}
ENSEMBLES: dict = {}  # name -> EnsembleRecipe (below)


def register(recipe: Recipe) -> Recipe:
    if recipe.name in RECIPES or recipe.name in ENSEMBLES:
        raise KeyError(f"recipe {recipe.name!r} registered twice")
    RECIPES[recipe.name] = recipe
    return recipe


@dataclass(frozen=True)
class EnsembleRecipe:
    """A paper's ensemble of trained recipes (EmoNet Table 2, "Weighted Ensemble Learning"): which members,
    how they are combined (:data:`ferlib.evaluate.ensemble.METHODS`; ``"de"``: weights by differential
    evolution on PublicTest) and the paper's numbers.  Not trained: ``python -m ferlib ensemble NAME``
    combines the members' trained runs (:func:`ferlib.jobs.ensembles.run_ensemble`)."""

    name: str
    paper: str
    row: str
    members: tuple
    method: str = "de"
    paper_results: dict = field(default_factory=dict)
    paper_weights: dict = field(default_factory=dict)  # member -> the paper's learned weight (EmoNet Table 1)
    notes: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def register_ensemble(ensemble: EnsembleRecipe) -> EnsembleRecipe:
    if ensemble.name in ENSEMBLES or ensemble.name in RECIPES:
        raise KeyError(f"recipe {ensemble.name!r} registered twice")
    missing = [m for m in ensemble.members if m not in RECIPES]
    if missing:
        raise KeyError(f"ensemble {ensemble.name!r}: members {missing} are not registered recipes")
    ENSEMBLES[ensemble.name] = ensemble
    return ensemble


@dataclass(frozen=True)
class Claim:
    """One difference a paper reports between two of its rows, to be checked on two of our recipes.

    ``better`` and ``base`` are the recipes we run; ``paper_rows`` are the paper's (better, base) rows whose
    difference the claim is, when ours are offline or CPU variants of them (default: the same recipes).
    :func:`ferlib.jobs.tables.claims_table` puts our difference beside the paper's.
    """

    change: str
    better: str
    base: str
    paper_rows: tuple[str, str] | None = None
    table: str = ""

    @property
    def paper_gain(self) -> float | None:
        """The paper's difference in points: its ``PrivateTest`` column, or ``accuracy`` where the paper names no
        split (CL-ResNet50 Table 3); None when either row has no such number."""
        better, base = self.paper_rows or (self.better, self.base)
        a, b = get_recipe(better).paper_results, get_recipe(base).paper_results
        key = next((k for k in ("PrivateTest", "accuracy") if k in a and k in b), None)
        return None if key is None else a[key] - b[key]


CLAIMS: dict[str, list[Claim]] = {}
"""Each paper's claims (paper key -> claims), registered by its recipes module with :func:`register_claims`."""


def register_claims(paper: str, *claims: Claim) -> tuple[Claim, ...]:
    CLAIMS.setdefault(paper, []).extend(claims)
    return claims


class UnknownRecipeError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_recipe(name: str) -> Recipe:
    if name in ENSEMBLES:
        raise UnknownRecipeError(f"{name!r} is an ensemble of {', '.join(ENSEMBLES[name].members)}, not a training "
                                 f"recipe: train its members, then run python -m ferlib ensemble {name}")
    if name not in RECIPES:
        raise UnknownRecipeError(f"unknown recipe {name!r}; `python -m ferlib recipes` lists: "
                                 f"{', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def with_face_filter(recipe: Recipe, rule: str) -> Recipe:
    """``recipe`` trained on the Training faces that pass EmoNet's face filter (``rule``: one of
    :data:`ferlib.features.face_filter.FILTER_RULES`), under its own name ``RECIPE-face-filter-RULE``
    (its own run folder and results file)."""
    from ...errors import UsageError
    from ...features.face_filter import FILTER_RULES

    if rule not in FILTER_RULES:
        raise UsageError(f"unknown face-filter rule {rule!r}", f"choose one of {', '.join(FILTER_RULES)}")
    return replace(recipe, name=f"{recipe.name}-face-filter-{rule}", face_filter=rule)


def smoke_recipe(base: str = "densenet-bc", **changes) -> Recipe:
    """A recipe shrunk for tests and demos: the tiny DenseNet, a few images, any field overridable."""
    defaults = dict(name=f"{base}-smoke", model="tiny-densenet",
                    quick=Budget(epochs=2, train_per_class=12, eval_per_class=4))
    defaults.update(changes)
    return replace(get_recipe(base), **defaults)
