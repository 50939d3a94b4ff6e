"""Low-level helpers every other package may use; they import nothing from ratt but ``errors``.

- :mod:`ratt.core.env`: device, threads, determinism, and the versions behind a run's numbers;
- :mod:`ratt.core.rng`: every global random generator's state, saved and restored;
- :mod:`ratt.core.weights`: which weights are perturbed (AWP, noise, landscapes) and weight noise;
- :mod:`ratt.core.distributed`: process groups, sharding and reductions for data parallelism;
- :mod:`ratt.core.files`: atomic writes;
- :mod:`ratt.core.units`: radii written as ``8/255`` or ``0.031``;
- :mod:`ratt.core.stats` and :mod:`ratt.core.table`: mean ± std, paired t-test and detectable
  difference, and plain-text tables.
"""
