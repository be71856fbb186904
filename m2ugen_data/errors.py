"""User-facing errors: each carries a one-line message that says what went wrong and where.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""

import errno


class M2UGenError(Exception):
    """Base class for errors that are the user's input or environment, not a bug."""


class SchemaError(M2UGenError):
    """A manifest write whose columns do not match the declared schema."""


class WarehouseError(M2UGenError):
    """The warehouse cannot be read or written (permissions, corrupt files)."""


class InvalidIdError(M2UGenError):
    """An identifier (YouTube ID, clip id, batch id) that is unsafe to use in a path or command."""


class MissingDependencyError(M2UGenError):
    """A system binary or optional package that the requested operation needs is absent."""


DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(WarehouseError):
    """No space or quota left while writing a file: the message names that file, not the one being read."""
