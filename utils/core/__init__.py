"""Layer: core, without torch. Parameters and profiles, the run directory (paths, ``run.json``, atomic writes,
the writer's hold), domains and groups by name, statistics over groups, the metrics' names and directions, figure
files and the loss curves, named errors and the command-line error handler, child processes."""
