"""Layer: orchestration. Kaggle: the bundle, push, status and output, the client's errors, and the kernel's own
steps (continuing from a previous version). ``python -m utils.kaggle`` is its command line."""
