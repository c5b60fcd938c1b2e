"""Defaults of streaming prediction, importable without numpy or torch (the CLI's --help reads them)."""

DEFAULT_MAX_BATCH_TOKENS = 8192  # tokens per encoder batch, padding included
DEFAULT_WINDOW = 256  # sets read, tokenized and sorted by size together
DTYPES = ("auto", "bfloat16", "float32")  # --dtype: auto = bf16 autocast on CUDA, float32 elsewhere
