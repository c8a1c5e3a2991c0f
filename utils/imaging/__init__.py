"""Layer: primitives. Images as numbers and pictures: Lab conversions and gamut mapping, the metrics (and their
table, read without torch), decoding an image file, scoring a batch, and figure files with the loss curves (drawn
with matplotlib only)."""
