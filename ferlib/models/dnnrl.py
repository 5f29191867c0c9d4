"""The DNNRL network (DNNRL §3.1, Table 1): three convolutions, three inception modules, a unit-norm embedding.

"Deep Neural Networks with Relativity Learning for Facial Expression Recognition"
(Guo et al., ICMEW 2016; key ``dnnrl`` in :mod:`ferlib.bibliography`).

Table 1, for a 108×108×1 face::

    convolution   3×3/2   54×54×32     288      839K
    convolution   3×3/1   54×54×32      9K       26M
    convolution   3×3/1   54×54×64     18K       53M
    max pooling   3×3/2   27×27×64
    inception(3a)         27×27×256   203K      148M
    max pooling   3×3/2   13×13×256
    inception(4a)         13×13×288   823K      139M
    max pooling   3×3/2    6×6×288
    inception(5a)          6×6×288    926K       33M
    ave pooling   3×3/3    2×2×288
    dropout(20%)           2×2×288
    linear                 1×1×512    589K      589K

Table 1's "Params" are convolution and linear **weights** (288 = 3·3·1·32: no bias,
no BatchNorm) and its "Ops" are multiply-adds (839K = 288 × 54·54): each row's ops
are its weights times its output's H·W.  :func:`table1` regenerates the table from
the model beside these numbers.

Sizes.  The first convolution has padding 1 (108 → 54); the others keep the size.
The max pools use ``ceil_mode=True``: a 3×3/2 pool of 54×54 gives
⌈(54 − 3)/2⌉ + 1 = 27 with ceil and ⌊(54 − 3)/2⌋ + 1 = 26 with floor, and only the
ceil chain gives Table 1's 27 → 13 → 6 → 2 (floor gives 26 → 12 → 5 → 1, and a 1×1×288
map cannot feed the 1152-input linear layer).  The input must therefore be 108×108
(the 3×3/3 average pool and the 1152 → 512 linear layer fix it).

Inception modules.  §3.1: "three inception modules ... consisting of 1×1, 3×3, and
5×5 convolution layers in parallel"; the widths are not given, only each module's
output width and parameter count.  Those counts say which kind of module it is:
823K / 256 input channels = 3215 and 926K / 288 input channels = 3215, the same
number -- the parameters of 4a and 5a are *proportional to their input width*.
That is what a module without 1×1 reductions has (every branch convolves the whole
input: ``in × (n1 + 9·n3 + 25·n5)``); with GoogLeNet's reductions (Szegedy et al.
2015) the 3×3 and 5×5 kernels act on the reduced width and the count is not
proportional to the input (GoogLeNet's own 3a widths on a 64-channel input give
137K, not 203K).  ferlib therefore uses three parallel branches -- 1×1, 3×3, 5×5,
each Conv-BN-ReLU, padded to keep the size -- concatenated, with the widths

* 3a: 48 + 128 + 80 = 256 channels, 64·(48 + 9·128 + 25·80) = 204,800 weights (Table 1: 203K, +0.9 %);
* 4a and 5a: 80 + 128 + 80 = 288 channels, 256·3232 = 827,392 and 288·3232 = 930,816
  (823K and 926K, +0.5 %),

chosen as round widths (multiples of 16) that land within 1 % of all three counts
(the ops then follow: 149M, 140M, 34M).  :class:`InceptionModule` also takes
GoogLeNet's 1×1 reductions and pool projection (``reduce3x3``, ``reduce5x5``,
``pool_proj``) for comparison.

Embedding and head.  After the average pool, dropout (20 %) and the 1152 → 512
linear layer, the 512-vector is L2-normalised: "Normalization ensures that the
relative distance derived from two images has an upper bound" -- with unit vectors
``‖f(a) − f(b)‖² ≤ 4``, so the relative distance ``‖f(p) − f(p⁻)‖² − ‖f(p) − f(p⁺)‖²``
lies in [−4, 4].  The unit vector is the embedding the triplet losses and the k-NN
classifier use (``forward_with_features`` returns it).  The optional softmax head
(Table 2's "DNN": "the proposed network ... with softmax") is a linear layer on the
512-vector *before* normalisation: on unit vectors every logit is bounded by its
class weight's norm, so the softmax could only become confident by growing the
weights, which weight decay resists.  No ReLU after the linear layer (the paper
lists none; the embedding must be free to point anywhere on the sphere).

Initialisation: the paper does not say.  He normal (fan_in) for convolutions and
linear weights, BatchNorm 1/0, biases 0, as ferlib's DenseNet.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .init import he_init_

__all__ = ["PAPER_INPUT_SIZE", "TABLE_1", "INCEPTION_WIDTHS", "ConvBNReLU", "InceptionModule", "DNNRLNet",
           "dnnrl_net", "DNNRL_VARIANTS", "table1", "weight_count"]

PAPER_INPUT_SIZE = 108
"""Side of the square grey face Table 1 is computed for (and the only size the network accepts)."""

# Table 1 as printed: layer, patch size / stride, output, params, ops ("-" = none).
TABLE_1 = [
    ("convolution", "3×3 / 2", "54×54×32", "288", "839K"),
    ("convolution", "3×3 / 1", "54×54×32", "9K", "26M"),
    ("convolution", "3×3 / 1", "54×54×64", "18K", "53M"),
    ("max pooling", "3×3 / 2", "27×27×64", "-", "-"),
    ("inception(3a)", "-", "27×27×256", "203K", "148M"),
    ("max pooling", "3×3 / 2", "13×13×256", "-", "-"),
    ("inception(4a)", "-", "13×13×288", "823K", "139M"),
    ("max pooling", "3×3 / 2", "6×6×288", "-", "-"),
    ("inception(5a)", "-", "6×6×288", "926K", "33M"),
    ("ave pooling", "3×3 / 3", "2×2×288", "-", "-"),
    ("dropout(20%)", "-", "2×2×288", "-", "-"),
    ("linear", "-", "1×1×512", "589K", "589K"),
]

# (1×1, 3×3, 5×5) widths of the inception modules; see the module docstring.
INCEPTION_WIDTHS = {"inception3a": (48, 128, 80), "inception4a": (80, 128, 80), "inception5a": (80, 128, 80)}


class ConvBNReLU(nn.Sequential):
    """Convolution (no bias), BatchNorm, ReLU: "Batch normalizations ... for all convolutional layers" (DNNRL §3.1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class InceptionModule(nn.Module):
    """Parallel 1×1, 3×3 and 5×5 Conv-BN-ReLU branches, concatenated on the channel axis (DNNRL §3.1).

    Args:
        ch1x1, ch3x3, ch5x5: output widths of the three branches.
        reduce3x3, reduce5x5: optional 1×1 reductions before the 3×3 / 5×5 convolution
            (GoogLeNet, Szegedy et al. 2015); ``None`` = the branch convolves the whole input
            (ferlib's DNNRL network, see :mod:`ferlib.models.dnnrl`).
        pool_proj: width of an optional 3×3 max-pool + 1×1 projection branch (0 = none).

    Every branch keeps the spatial size; ``out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj``.
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3: int, ch5x5: int, *, reduce3x3: int | None = None,
                 reduce5x5: int | None = None, pool_proj: int = 0):
        super().__init__()
        if min(ch1x1, ch3x3, ch5x5) < 1 or pool_proj < 0:
            raise ValueError(f"inception branch widths must be >= 1 (pool_proj >= 0), got "
                             f"{(ch1x1, ch3x3, ch5x5, pool_proj)}")

        def branch(width: int, k: int, reduce: int | None) -> nn.Sequential:
            if reduce is None:
                return nn.Sequential(ConvBNReLU(in_channels, width, k, padding=k // 2))
            return nn.Sequential(ConvBNReLU(in_channels, reduce, 1), ConvBNReLU(reduce, width, k, padding=k // 2))

        self.branch1x1 = ConvBNReLU(in_channels, ch1x1, 1)
        self.branch3x3 = branch(ch3x3, 3, reduce3x3)
        self.branch5x5 = branch(ch5x5, 5, reduce5x5)
        self.branch_pool = (nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvBNReLU(in_channels, pool_proj, 1))
                            if pool_proj else None)
        self.in_channels = in_channels
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.branch1x1(x), self.branch3x3(x), self.branch5x5(x)]
        if self.branch_pool is not None:
            outs.append(self.branch_pool(x))
        return torch.cat(outs, dim=1)


class DNNRLNet(nn.Module):
    """The network of DNNRL Table 1 (see the module docstring for every choice).

    Args:
        num_classes: classes of the optional softmax head (7 emotions).
        in_channels: 1 for grey faces.
        classifier: True adds the softmax head (Table 2's "DNN"); False gives an
            embedding-only network (Table 2's "T-DNN" and "DNNRL", read out by k-NN).
        embedding_dim: width of the final linear layer (512 in Table 1).
        dropout: drop probability before the linear layer ("dropout(20%)" in Table 1).
        input_size: side of the square input face.  108 is Table 1 (its 3×3/3 average pool turns the
            6×6 map into 2×2).  Another size (the kit's CPU variants: 64 px, about a third of the
            multiply-adds) keeps every layer and replaces that pool by an adaptive average pool to 2×2,
            so the 1,152-input linear layer stays; at 108 px the two pools give the same output.

    Interface shared by ferlib models: ``forward_with_features(x) -> (logits, embedding)``
    with ``embedding`` the unit-norm (B, ``feature_dim``) vector and ``logits`` ``None``
    without a head; ``forward(x)`` returns the logits (the embedding without a head).
    ``self.features`` (an ``nn.Sequential``) maps the image to the 2×2×288 map.
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 1, *, classifier: bool = True,
                 embedding_dim: int = 512, dropout: float = 0.2, input_size: int = PAPER_INPUT_SIZE):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if final_map_side(input_size) < 2:
            raise ValueError(f"input_size {input_size} leaves a {final_map_side(input_size)}-pixel map before the "
                             f"average pool; DNNRLNet needs at least 2×2 there (choose a larger input_size; Table 1: "
                             f"{PAPER_INPUT_SIZE})")
        self.input_size = int(input_size)
        w3a, w4a, w5a = (INCEPTION_WIDTHS[k] for k in ("inception3a", "inception4a", "inception5a"))
        pool = lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True)  # noqa: E731  (ceil: Table 1's 27, 13, 6)
        self.features = nn.Sequential()
        self.features.add_module("conv1", ConvBNReLU(in_channels, 32, 3, stride=2, padding=1))
        self.features.add_module("conv2", ConvBNReLU(32, 32, 3, padding=1))
        self.features.add_module("conv3", ConvBNReLU(32, 64, 3, padding=1))
        self.features.add_module("pool1", pool())
        self.features.add_module("inception3a", InceptionModule(64, *w3a))
        self.features.add_module("pool2", pool())
        self.features.add_module("inception4a", InceptionModule(self.features.inception3a.out_channels, *w4a))
        self.features.add_module("pool3", pool())
        self.features.add_module("inception5a", InceptionModule(self.features.inception4a.out_channels, *w5a))
        self.features.add_module("avgpool", nn.AvgPool2d(3, stride=3) if input_size == PAPER_INPUT_SIZE
                                  else nn.AdaptiveAvgPool2d(2))
        channels = self.features.inception5a.out_channels
        self.dropout = nn.Dropout(dropout)
        self.embedding = nn.Linear(channels * 2 * 2, embedding_dim)
        self.feature_dim: int = embedding_dim
        self.num_classes = num_classes
        self.classifier = nn.Linear(embedding_dim, num_classes) if classifier else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (fan_in) normal for convolution and linear weights; BatchNorm 1/0; biases 0."""
        he_init_(self)

    def _check_input(self, x: torch.Tensor) -> None:
        n = self.input_size
        if x.ndim != 4 or tuple(x.shape[-2:]) != (n, n):
            raise ValueError(f"this DNNRLNet takes (B, C, {n}, {n}) faces (its input_size; DNNRL Table 1: "
                             f"{PAPER_INPUT_SIZE}), got shape {tuple(x.shape)}; use the 'dnnrl' augmentation "
                             f"preset with out_size={n}")

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        self._check_input(x)
        z = self.embedding(torch.flatten(self.dropout(self.features(x)), 1))  # dropout: elementwise, as Table 1
        embedding = F.normalize(z.float(), dim=1)
        logits = self.classifier(z) if self.classifier is not None else None
        return logits, embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, embedding = self.forward_with_features(x)
        return embedding if logits is None else logits

    def extra_repr(self) -> str:
        head = f"softmax head ({self.num_classes} classes)" if self.classifier is not None else "no head (k-NN)"
        return f"feature_dim={self.feature_dim} (unit norm), {head}"


def dnnrl_net(num_classes: int = 7, in_channels: int = 1, classifier: bool = True, dropout: float = 0.2,
              input_size: int = PAPER_INPUT_SIZE) -> DNNRLNet:
    """The Table 1 network; ``classifier=False`` for the embedding-only (triplet) recipes; ``input_size``
    other than 108 for the CPU variants (:class:`DNNRLNet`)."""
    return DNNRLNet(num_classes, in_channels, classifier=classifier, dropout=dropout, input_size=input_size)


def final_map_side(input_size: int) -> int:
    """Side of the map inception5a outputs for a square input (conv1 stride 2 with padding 1, then three
    3×3/2 max pools with ceil mode): 6 at Table 1's 108 px, 4 at 64."""
    side = (input_size - 1) // 2 + 1
    for _ in range(3):
        side = -(-(side - 3) // 2) + 1
    return side


def weight_count(module: nn.Module) -> int:
    """Convolution and linear weights of ``module`` (no biases, no BatchNorm): what Table 1's "Params" counts."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def _paper_number(text: str) -> int | None:
    if text == "-":
        return None
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("KM")) * scale)


# the model's rows of Table 1, in order (submodule names)
TABLE_1_MODULES = ["features.conv1", "features.conv2", "features.conv3", "features.pool1", "features.inception3a",
                   "features.pool2", "features.inception4a", "features.pool3", "features.inception5a",
                   "features.avgpool", "dropout", "embedding"]


def table1(model: DNNRLNet | None = None, as_frame: bool = True):
    """Table 1 regenerated from ``model`` (default: a fresh :class:`DNNRLNet`) beside the paper's numbers.

    Columns: ``layer`` (Table 1's name), ``module`` (ours), ``patch/stride``,
    ``output`` / ``paper output`` ("H×W×C"), ``params`` (convolution and linear weights,
    as Table 1 counts them) / ``paper params``, ``all params`` (with biases and
    BatchNorm), ``ops`` (multiply-adds of one image, :func:`~ferlib.models.summary.count_macs`)
    / ``paper ops``.  The paper's numbers are as printed ("203K" → 203000).
    """
    from .summary import count_macs, count_parameters, layer_table

    model = model if model is not None else DNNRLNet()
    named = dict(model.named_modules())
    rows_out = layer_table(model, (model.features.conv1[0].in_channels, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE),
                           modules=TABLE_1_MODULES, as_frame=False)
    rows, in_shape = [], (model.features.conv1[0].in_channels, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE)
    for name, out, (layer, patch, paper_out, paper_params, paper_ops) in zip(TABLE_1_MODULES, rows_out, TABLE_1):
        module = named[name]
        shape = out["output_shape"]
        output = f"{shape[1]}×{shape[2]}×{shape[0]}" if len(shape) == 3 else f"1×1×{shape[0]}"
        weights = weight_count(module)
        if name == "embedding":
            in_shape = (int(torch.Size(in_shape).numel()),)
        ops = count_macs(module, in_shape) if weights else None
        rows.append({"layer": layer, "module": name.removeprefix("features."), "patch/stride": patch,
                     "output": output, "paper output": paper_out,
                     "params": weights or None, "paper params": _paper_number(paper_params),
                     "all params": count_parameters(module) or None,
                     "ops": ops, "paper ops": _paper_number(paper_ops)})
        in_shape = shape
    if as_frame:
        import pandas as pd

        frame = pd.DataFrame(rows)
        for col in ("params", "paper params", "all params", "ops", "paper ops"):
            frame[col] = frame[col].astype("Int64")  # integers, with <NA> where a row has none
        return frame
    return rows


DNNRL_VARIANTS: dict[str, Callable[..., DNNRLNet]] = {"dnnrl-net": dnnrl_net}
