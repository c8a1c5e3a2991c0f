"""Layer: primitives. The networks and their machine: the generator and discriminator, checkpoints, the device
and precision, the distributed process group."""
