"""Losses: softmax cross-entropy, center loss, triplet losses -- all trainer criteria."""
