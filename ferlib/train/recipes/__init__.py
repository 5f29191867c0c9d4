"""Named recipes, one module per paper; ``python -m ferlib recipes`` lists them.

This package imports the paper modules (top-down); each registers its rows in
:data:`~ferlib.train.recipes.base.RECIPES` through :func:`~ferlib.train.recipes.base.register`.
"""
from .base import (CLAIMS, ENSEMBLES, RECIPES, Budget, Claim, EnsembleRecipe, FrozenPhase, Recipe, UnknownRecipeError, get_recipe,
                   register, register_claims, register_ensemble, smoke_recipe, with_face_filter)
from . import densenet_center_loss, cl_resnet50, dnnrl, ferplus, emonet  # noqa: E402,F401  (register their rows)

register(smoke_recipe(name="tiny-densenet-demo", paper="none",
                      row="demo (not a paper row): tiny DenseNet-BC for tests and CPU demos",
                      paper_results={}, quick=Budget(epochs=2, train_per_class=30, eval_per_class=10),
                      full=Budget(epochs=30)))

__all__ = ["CLAIMS", "RECIPES", "ENSEMBLES", "Budget", "Claim", "EnsembleRecipe", "FrozenPhase", "Recipe", "UnknownRecipeError",
           "get_recipe", "register", "register_claims", "register_ensemble", "smoke_recipe", "with_face_filter"]
