# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Try it: your own photo
#
# A FER-2013 model has only ever seen 48×48 grey faces, cropped tightly by a face
# detector. To use it on a photo, `ferlib.predict` does the same: it finds each face
# with OpenCV's Haar cascade, crops it with the margin FER-2013's crops have (measured,
# see `ferlib.predict`), makes it grey, resizes it to 48×48, and hands it to the model
# through the checkpoint's own evaluation transform — exactly the path the model was
# evaluated on.
#
# The same from a terminal: `python -m ferlib predict PHOTO --out annotated.png`.

# %%
from pathlib import Path

from IPython.display import display
from PIL import Image
from skimage import data

from ferlib.predict import annotate, default_model_path, load_predictor, predict_faces, upload_widget

# %% [markdown]
# ## The model
#
# The kit's default is its committed real-data model when there is one. Without it,
# this notebook trains the quick-profile DenseNet-BC for a few seconds — a smoke test of
# the pipeline whose predictions mean nothing (it has seen a few hundred faces).

# %%
if default_model_path().is_file():
    model = load_predictor()
    about = f"the kit's model {default_model_path().name}"
else:
    from ferlib.train.recipes import get_recipe
    from ferlib.train.results import run_recipe

    result = run_recipe(get_recipe("densenet-bc"), profile="quick", progress=False)
    model = load_predictor(Path(result["provenance"]["run_dir"]) / "best.pt")
    about = ("a QUICK-PROFILE smoke-test model (PrivateTest accuracy "
             f"{result['metrics']['PrivateTest']['accuracy']:.1%} on {result['data']['PrivateTest']} faces"
             + (", SYNTHETIC data" if result["synthetic"] else "") + "): its predictions mean nothing")
print("predicting with", about)

# %% [markdown]
# ## A photo that ships with scikit-image
#
# NASA's portrait of astronaut Eileen Collins (`skimage.data.astronaut()`): the box is the
# detector's, the bars are the model's probabilities for the seven FER-2013 classes.

# %%
photo = data.astronaut()
faces = predict_faces(photo, model)
display(Image.fromarray(annotate(photo, faces)))
for f in faces:
    print(f"face at {tuple(f.box)}: {f.label}")

# %% [markdown]
# The crop the model saw, next to the kind of face it was trained on, is worth a look:
# a crop with more background than FER-2013's shrinks the face the model knows.

# %%
display(Image.fromarray(faces[0].crop).resize((144, 144), Image.NEAREST))

# %% [markdown]
# ## Your photo
#
# Choose a photo below (it stays on this machine). Frontal faces of a reasonable size
# work best; a profile, sunglasses or a face smaller than ~4 % of the photo will not be
# found.

# %%
upload_widget(model)
