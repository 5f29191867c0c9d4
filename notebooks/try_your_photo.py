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

import numpy as np
from IPython.display import display
from PIL import Image
from skimage import data

from ferlib.data.discovery import load_fer2013
from ferlib.predict import annotate, default_model_path, load_predictor, predict_faces, upload_widget
from ferlib.viz.data_plots import face_and_probabilities

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
    from ferlib.train.results import run_recipe  # the quick smoke model: one library call
    from ferlib.runs import RunKey

    smoke_data = load_fer2013(verbose=False)
    key = RunKey.for_training("densenet-bc", "quick", synthetic=bool(smoke_data.synthetic))
    result = run_recipe(get_recipe("densenet-bc"), dataset=smoke_data, profile="quick", progress=False,
                        results_path=key.results_path(), run_dir=key.run_dir())
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
# The crop the model saw, next to the kind of face it was trained on (a FER-2013 Training
# face of the class the model predicted — a synthetic face, labelled so, when FER-2013 is
# not here), is worth a look: a crop with more background than FER-2013's shrinks the face
# the model knows. The bars are the model's probabilities for the seven classes.

# %%
fer = load_fer2013(verbose=False)
train = fer.split("Training")
for f in faces:
    same = np.flatnonzero(np.asarray(train.labels) == list(fer.class_names).index(f.label)) \
        if f.label in fer.class_names else np.array([], dtype=int)
    ref = train.pixels[same[0]] if len(same) else train.pixels[0]
    display(face_and_probabilities(f.crop, f.probabilities, f.class_names, reference=ref,
                                   reference_title=(f"{'a synthetic' if fer.synthetic else 'a FER-2013'} "
                                                    f"{f.label if len(same) else ''} face").replace("  ", " "),
                                   title=f"face at {tuple(f.box)}: {f.label}", tag=fer.tag if fer.synthetic else None))

# %% [markdown]
# ## Your photo
#
# Choose a photo below (it stays on this machine). Frontal faces of a reasonable size
# work best; a profile, sunglasses or a face smaller than ~4 % of the photo will not be
# found.

# %%
upload_widget(model)
