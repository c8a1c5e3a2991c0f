"""Layer: stages. Train one model: batches, the GAN recipe, the training loop with its checkpoints, launching
it on every GPU, and timing a few steps for the plan. ``python -m utils.train`` trains one model."""
