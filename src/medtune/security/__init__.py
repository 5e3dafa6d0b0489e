"""Security building blocks for the server: keys and roles, limits, PHI, audit log, transport.

Nothing here imports FastAPI: ``medtune keys``, ``medtune audit verify`` and ``medtune phi scan``
run on a core install, on the machine where the log and the key store live.
"""


class SecurityError(ValueError):
    """A security check refused something; the message names the file or field and the fix."""
