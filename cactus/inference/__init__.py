"""Inference: a trained model folder loaded for prediction (``model``), average-link clustering and the
threshold sweep (``cluster``), and frozen-encoder embeddings of whole sets (``embedding``)."""
