"""The metrics by name: what each measures, its unit, and which way is better (its direction).

The figures, the report and the claims read this table without importing torch; the torch code that computes each
metric is utils.imaging.metrics (which names this table too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")  # a score, or a column of scores (numpy, pandas)

GOALS = ("lower", "higher", "one", "none")


@dataclass(frozen=True)
class Metric:
    """A per-image score: its name as shown, what is better, its unit, and what it measures."""

    name: str
    goal: str  # "lower" or "higher" is better; "one": a ratio to the truth, 1 is right; "none": descriptive
    unit: str = ""
    about: str = ""

    @property
    def label(self) -> str:
        """The name as every table and axis shows it: direction included."""
        direction = {
            "lower": "lower is better",
            "higher": "higher is better",
            "one": "1 = as in the truth, below 1 = washed out",
            "none": "compare with the truth's",
        }[self.goal]
        return f"{self.name} ({direction})"

    @property
    def ranked(self) -> bool:
        return self.goal != "none"

    def loss(self, values: T) -> T:
        """What ranking minimises: the value, its negative, or its distance from 1."""
        if self.goal == "lower":
            return values
        if self.goal == "higher":
            return -values
        if self.goal == "one":
            return abs(values - 1)
        raise ValueError(f"metric {self.name!r} is descriptive: it has no better or worse")


METRICS: dict[str, Metric] = {
    "ciede2000": Metric("CIEDE2000", "lower", "Delta E00", "mean per-pixel colour difference to the truth"),
    "ssim": Metric("SSIM", "higher", "", "structural similarity on RGB (dominated by the given L)"),
    "ssim_ab": Metric("chroma SSIM", "higher", "", "SSIM on the a and b channels: colour structure only"),
    "psnr": Metric("PSNR", "higher", "dB", "peak signal-to-noise ratio on RGB in [0, 1]"),
    "colorfulness_ratio": Metric("colorfulness ratio", "one", "", "colorfulness of the output / of the truth"),
    "chroma_ratio": Metric("chroma ratio", "one", "", "mean C*ab of the output / of the truth"),
    "colorfulness": Metric("colorfulness", "none", "", "Hasler-Suesstrunk colorfulness of the output"),
    "colorfulness_truth": Metric("truth colorfulness", "none", "", "Hasler-Suesstrunk colorfulness of the truth"),
}
