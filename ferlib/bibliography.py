"""The papers ferlib implements and what they build on, under names that cannot be confused.

Docstrings cite a paper by its key here (``DenseNet-CL Eq. 5``); the DenseNet
architecture paper is ``Huang et al.`` (never "the densenet paper"), the FER+ labels
paper is ``Barsoum et al.``, and the FER+ Sobel/Laplacian paper is ``Sobel-Laplacian-CL``.
``recipe.paper`` holds a key of :data:`PAPERS`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    key: str
    authors: str
    title: str
    venue: str
    year: int | None
    ids: str = ""  # arXiv / DOI where known

    def cite(self) -> str:
        year = f" {self.year}." if self.year else ""
        ids = f" {self.ids}." if self.ids else ""
        return f"{self.authors}. {self.title}. {self.venue}.{year}{ids}"


_REFS = [
    # the five source papers
    Reference("densenet-cl", "D. V. Sang, L. T. B. Cuong, V. V. Thuan",
              "Discriminative Deep Feature Learning for Facial Emotion Recognition",
              "1st International Conference on Multimedia Analysis and Pattern Recognition (MAPR), IEEE", 2018),
    Reference("cl-resnet50", "H.-W. Kang et al.",
              "Learning discriminative emotional features from facial images via ResNet50 with center loss "
              "(in Korean, English abstract)", "Journal of KIISE", 2023,
              "code: github.com/KangHyunWook/Journal-of-KIISE-2023"),
    Reference("dnnrl", "Y. Guo, D. Tao, J. Yu, H. Xiong, Y. Li, D. Tao",
              "Deep Neural Networks with Relativity Learning for Facial Expression Recognition",
              "IEEE International Conference on Multimedia & Expo Workshops (ICMEW)", 2016),
    Reference("emonet", "L. Kumari", "EmoNet: Facial Expression Recognition using Deep Learning Techniques",
              "project report, University of Washington, Seattle", None),
    Reference("sobel-laplacian-cl", "S. P. Khadanga", "An Adapted Deep Learning Technique to Boost Emotion "
              "Categorization (FER+ with Sobel/Laplacian inputs and center loss)",
              "Raajdhani Engineering College, Bhubaneswar (preprint)", None),
    # what they build on
    Reference("center-loss", "Y. Wen, K. Zhang, Z. Li, Y. Qiao",
              "A Discriminative Feature Learning Approach for Deep Face Recognition", "ECCV", 2016,
              "doi:10.1007/978-3-319-46478-7_31"),
    Reference("huang-densenet", "G. Huang, Z. Liu, L. van der Maaten, K. Q. Weinberger",
              "Densely Connected Convolutional Networks", "CVPR", 2017, "arXiv:1608.06993"),
    Reference("barsoum-ferplus", "E. Barsoum, C. Zhang, C. Canton Ferrer, Z. Zhang",
              "Training Deep Networks for Facial Expression Recognition with Crowd-Sourced Label Distribution",
              "ACM ICMI", 2016, "arXiv:1608.01041"),
    Reference("facenet", "F. Schroff, D. Kalenichenko, J. Philbin",
              "FaceNet: A Unified Embedding for Face Recognition and Clustering", "CVPR", 2015, "arXiv:1503.03832"),
    Reference("hermans-triplet", "A. Hermans, L. Beyer, B. Leibe",
              "In Defense of the Triplet Loss for Person Re-Identification", "arXiv preprint", 2017,
              "arXiv:1703.07737"),
    Reference("krogh-vedelsby", "A. Krogh, J. Vedelsby",
              "Neural Network Ensembles, Cross Validation, and Active Learning", "NIPS 7", 1995),
    Reference("fer2013", "I. J. Goodfellow et al.",
              "Challenges in Representation Learning: A report on three machine learning contests",
              "ICONIP", 2013, "arXiv:1307.0414"),
]

PAPERS: dict[str, Reference] = {r.key: r for r in _REFS}
SOURCE_PAPERS = ("densenet-cl", "cl-resnet50", "dnnrl", "emonet", "sobel-laplacian-cl")


def cite(key: str) -> str:
    if key not in PAPERS:
        raise KeyError(f"unknown paper {key!r}; known: {', '.join(PAPERS)}")
    return PAPERS[key].cite()
