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
# # Try it: your own photo, folder or video
#
# A FER-2013 model has only ever seen 48×48 grey faces, cropped tightly by a face
# detector. To use it on a photo, `ferlib.predict` does the same: it finds each face
# with OpenCV's Haar cascade, crops it with the margin FER-2013's crops have (measured,
# see `ferlib.predict.faces`), makes it grey, resizes it to 48×48, and hands it to the model
# through the checkpoint's own evaluation transform — exactly the path the model was
# evaluated on.
#
# The same from a terminal:
#
# ```bash
# python -m ferlib predict PHOTO --out annotated.png          # a photo (several faces: each reported)
# python -m ferlib predict FOLDER --recursive --csv > faces.csv  # every photo in a folder
# python -m ferlib predict CLIP.mp4 --out annotated.mp4        # a video: faces tracked, labels smoothed
# python -m ferlib webcam                                      # a webcam, live
# python -m ferlib export models/densenet-bc-center-60min-cpu-2threads.pt model.onnx   # for other runtimes
# ```
#
# The label order of every output is the model's own (its checkpoint records its class
# names; the table of FER-2013's and FER+'s orders is in the README and chapter 00).

# %% tags=["hide-input"]
import tempfile
from pathlib import Path

import numpy as np
from IPython.display import display
from PIL import Image
from skimage import data

from ferlib.data.discovery import load_fer2013
from ferlib.predict import annotate, default_model_path, load_predictor, model_warning, predict_faces, upload_widget
from ferlib.predict.video import write_demo_video
from ferlib.predict.widgets import show_results
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
if model_warning(model):
    print(model_warning(model))

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
# ## A folder, as phones and editors leave them
#
# `show_results` takes what `python -m ferlib predict` takes: a photo, a folder of photos
# or a video. This folder is made here from the same photo, saved the ways photos come:
# a phone photo stored sideways with an EXIF orientation tag (every viewer shows it
# upright, and so does `ferlib`: the box is in the upright photo), a 16-bit greyscale scan,
# a palette PNG, a CMYK JPEG, a picture of two faces, one so small that no face can be
# classified, and a file that is not an image.

# %%
folder = Path(tempfile.mkdtemp(prefix="ferlib-try-")) / "photos"
folder.mkdir()
upright = Image.fromarray(photo)
exif = Image.Exif()
exif[274] = 6  # "rotate 90° clockwise to show": the camera stored the picture sideways
upright.transpose(Image.Transpose.ROTATE_90).save(folder / "phone.jpg", exif=exif, quality=92)
Image.fromarray(np.asarray(upright.convert("L")).astype(np.uint16) * 257).save(folder / "scan_16bit.png")
upright.convert("P", palette=Image.Palette.ADAPTIVE).save(folder / "palette.png")
upright.convert("CMYK").save(folder / "print_cmyk.jpg")
Image.fromarray(np.concatenate([photo, photo[:, ::-1]], axis=1)).save(folder / "two_faces.png")
upright.resize((64, 64), Image.LANCZOS).save(folder / "thumbnail.png")
(folder / "notes.txt").write_text("not a photo")
show_results(folder, model)

# %% [markdown]
# ## A short video
#
# A clip made here with OpenCV: the same photo sliding across a 640×480 frame, off the frame for a
# moment. Faces are searched in the whole frame every few frames and tracked in between, and each
# tracked face's probabilities are smoothed over time (an exponential moving average with a time
# constant of 0.3 s) — `ferlib.predict.video` explains both choices; `bench/video_fps.py` measures
# the frames per second with and without them. Below: six frames spread over the clip, annotated
# (`#1` is the track's number; a face that leaves and comes back is a new track).

# %%
clip = write_demo_video(folder.parent / "clip.mp4", frames=75)
show_results(clip, model)

# %% [markdown]
# ## Your photo, folder or video
#
# Put a path in `YOUR_PATH` and run the cell, or choose files below (they stay on this
# machine). Frontal faces of a reasonable size work best; a profile, sunglasses or a face
# smaller than ~4 % of the photo will not be classified (a small one is said to be too small).

# %%
YOUR_PATH = None  # e.g. "~/Pictures/holiday" or "clip.mp4"
if YOUR_PATH:
    show_results(Path(YOUR_PATH).expanduser(), model, recursive=True)

# %%
upload_widget(model)
