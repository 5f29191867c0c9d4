"""FER data: readers, FER+ votes, synthetic faces, normalisation, batched augmentation."""
