"""Benchmark tokenizing a set holding one very long text: the whole text (before) vs cut by characters (after).

Before issue 12 the set encoder handed every text whole to the tokenizer, which truncates only after tokenizing
all of it; now ``SetEncoder.tokenize_entities`` cuts each text to ``max_tokens * CHARS_PER_TOKEN`` characters
first. Both variants run in this one process on the same set (one text of ``--mb`` MB of words plus two titles),
with the packaged all-MiniLM-L6-v2 tokenizer, and each prints a JSON row: variant, chars, max_tokens, seconds
(the minimum of ``--repeat`` runs) and whether its token ids equal those of the uncut text.

Example:
    python bench/long_text.py --mb 10
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cactus.data.hygiene import CHARS_PER_TOKEN
from cactus.encoders import EncoderConfig, SetEncoder

WORDS = ("glue", "stick", "hot", "glue", "gun", "candle", "wick", "beeswax", "sheets", "soy", "wax", "flakes",
         "mason", "jar", "lid", "insulated", "steel", "water", "bottle", "ceramic", "coffee", "mug")


def long_text(chars: int) -> str:
    """Words of product titles repeated to ``chars`` characters."""
    text = " ".join(WORDS)
    return (text + " ") * (chars // (len(text) + 1) + 1)


def timed(run, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = run()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=10.0, help="size of the long text in MB (default 10)")
    parser.add_argument("--max-tokens", type=int, default=32, help="the encoder's max_tokens (default 32)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the minimum is reported")
    args = parser.parse_args()

    encoder = SetEncoder(EncoderConfig(backbone="minilm", max_tokens=args.max_tokens))
    text = long_text(int(args.mb * 1_000_000))[: int(args.mb * 1_000_000)]
    entity_set = [text, "glue stick", "hot glue gun"]

    def uncut():
        return encoder.tokenizer(entity_set, truncation=True, max_length=args.max_tokens)["input_ids"]

    seconds_before, ids_before = timed(uncut, args.repeat)
    seconds_after, ids_after = timed(lambda: encoder.tokenize_entities([entity_set])[0], args.repeat)
    common = {"chars": len(text), "max_tokens": args.max_tokens, "cut_at_chars": args.max_tokens * CHARS_PER_TOKEN,
              "tokenizer": "all-MiniLM-L6-v2"}
    print(json.dumps({"variant": "uncut (before)", **common, "seconds": round(seconds_before, 4),
                      "same_ids_as_uncut": True}))
    print(json.dumps({"variant": "cut (after)", **common, "seconds": round(seconds_after, 4),
                      "same_ids_as_uncut": ids_after == ids_before}))


if __name__ == "__main__":
    main()
