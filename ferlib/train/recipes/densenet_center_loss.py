"""DenseNet-CL (Tables II of "Facial expression recognition with DenseNet and center loss"):
all eight rows -- DenseNet, DenseNet-BC, WideDenseNet, WideDenseNet-BC, each without and
with center loss -- generated from one table literal.

Protocol (§IV-C): SGD, Nesterov momentum 0.9, batch 128, weight decay 1e-4 (DenseNet)
/ 1e-5 (WideDenseNet), lr 0.1 divided by 10 when the training loss stops improving
(the ``plateau`` schedule, :mod:`ferlib.train.schedules`), the augmented 48x48 face
resized to 42x42 (Table I's 21x21 after the stem), per-pixel standardisation.  The
paper gives no epoch count: the full budget is 100 epochs.  Center loss: lambda = 0.05,
alpha = 0.5, and the paper's "constant learning rate 10^-3 for training center loss"
read as the lr of the lambda L_C term on the network (chapter 03, "Two learning
rates", derives and tests this reading).
"""
from __future__ import annotations

from ..criteria import CenterLossConfig, CrossEntropyConfig
from .base import Budget, Claim, Recipe, register, register_claims

PAPER = "densenet-cl"
CENTER = CenterLossConfig(lambda_=0.05, alpha=0.5, center_term_lr=1e-3)

# Table II, in %: (title, without center loss: Public, Private, + ensemble Public, Private;
#                          with center loss:    Public, Private, + ensemble Public, Private)
TABLE_II = {
    "densenet": ("DenseNet", (68.9, 69.8, 69.1, 70.0), (69.0, 70.1, 69.4, 71.1)),
    "densenet-bc": ("DenseNet-BC", (69.5, 70.7, 69.8, 71.0), (68.9, 70.7, 69.7, 70.9)),
    "wide-densenet": ("WideDenseNet", (70.1, 70.6, 70.2, 70.9), (70.2, 71.3, 71.1, 71.6)),
    "wide-densenet-bc": ("WideDenseNet-BC", (70.2, 71.5, 70.9, 71.9), (70.6, 72.2, 70.7, 72.2)),
}


def _paper(numbers) -> dict:
    pub, priv, epub, epriv = numbers
    return {"PublicTest": pub, "PrivateTest": priv, "ensemble_PublicTest": epub, "ensemble_PrivateTest": epriv}


for _model, (_title, _plain, _center) in TABLE_II.items():
    _wide = _model.startswith("wide")
    _common = dict(paper=PAPER, model=_model, augment="densenet", weight_decay=1e-5 if _wide else 1e-4,
                   quick=Budget(epochs=2, train_per_class=20 if _wide else 40, eval_per_class=10 if _wide else 20))
    register(Recipe(name=_model, row=f"Table II: {_title}", criterion=CrossEntropyConfig(),
                    paper_results=_paper(_plain), **_common))
    register(Recipe(name=f"{_model}-center", row=f"Table II: {_title} + center loss", criterion=CENTER,
                    paper_results=_paper(_center), **_common))

CLAIMS = register_claims(PAPER, *(Claim(f"center loss ({title})", f"{model}-center", model, table="Table II")
                                  for model, (title, _plain, _center) in TABLE_II.items()))
"""Table II's claim, one pair per network: + center loss against softmax alone."""
