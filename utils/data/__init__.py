"""Layer: stages. Prepare: sources and the demo data, decoding in a pool, groups (names, then near-duplicate
hashing), the grouped split, and the shards every later stage reads."""
