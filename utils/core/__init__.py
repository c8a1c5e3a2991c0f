"""Layer: core, without torch. Parameters and profiles, the run directory (paths, ``run.json``, atomic writes,
the writer's hold), domains and groups by name, statistics over groups, named errors and the command-line
error handler, child processes."""
