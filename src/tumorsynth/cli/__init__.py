"""The ``tumorsynth`` command line (see :mod:`tumorsynth.cli.main`)."""
