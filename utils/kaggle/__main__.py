"""``python -m utils.kaggle``: bundle, push, status, output."""

import sys

from utils.kaggle.commands import build_parser, main

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
