"""The ``textclf`` command line: thin wrappers over the library, assembled in :mod:`textclf.cli.main`."""
