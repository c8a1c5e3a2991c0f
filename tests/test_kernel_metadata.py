"""kernel-metadata.json: the fields the kaggle CLI needs for a private GPU notebook kernel."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_kernel_metadata_is_a_gpu_notebook_kernel() -> None:
    meta = json.loads((ROOT / "kernel-metadata.json").read_text())
    owner, _, slug = meta["id"].partition("/")
    assert owner and slug
    assert len(meta["title"]) >= 5
    # Kaggle derives the slug from the title
    assert re.sub(r"[^a-z0-9]+", "-", meta["title"].lower()).strip("-") == slug
    assert (ROOT / meta["code_file"]).is_file()
    assert meta["language"] == "python" and meta["kernel_type"] == "notebook"
    assert meta["enable_gpu"] is True and meta["enable_internet"] is True and meta["is_private"] is True
    assert meta["machine_shape"] == "NvidiaTeslaT4"
    assert all(isinstance(meta[k], list) for k in ("dataset_sources", "competition_sources", "kernel_sources"))
