"""``python -m utils.train`` (and torchrun's ``-m utils.train``): train one model."""

import sys

from utils.train.training import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
