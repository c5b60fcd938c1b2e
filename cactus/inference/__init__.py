"""Inference: a trained model folder loaded for prediction (``model``), average-link clustering and the
threshold sweep (``cluster``), the threshold's one check (``threshold``), and frozen-encoder embeddings of whole
sets (``embedding``)."""
