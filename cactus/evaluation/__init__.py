"""Scoring clusterings: the metrics (``metrics``), predictions against gold sets (``scoring``), the unsupervised
baselines (``baselines``), the paper's Table 2 in one run (``report``) and its Markdown tables (``tables``)."""
