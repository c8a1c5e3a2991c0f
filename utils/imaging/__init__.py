"""Layer: primitives. Images as numbers: Lab conversions and gamut mapping, the metrics, decoding an image
file, scoring a batch."""
