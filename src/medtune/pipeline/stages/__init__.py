"""One module per stage of `medtune run`; importing this package registers them all (see ``registry``)."""

from . import data, eval, export, serve, synth, train  # noqa: F401  (registration by import)
