"""The cross-domain colorization kit, in four layers whose imports point down only (``docs/development.md``).

- core (no torch): ``core``
- primitives: ``imaging``, ``nets``
- stages: ``data``, ``train``, ``eval``
- orchestration: ``run``, ``kaggle``, ``pipeline``, ``colorize``

The command lines: ``python -m utils.pipeline``, ``utils.train``, ``utils.kaggle``, ``utils.colorize``.
"""
