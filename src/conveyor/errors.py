"""The refusals a user can act on, as one tree of types that the CLI and the API map in one place.

:class:`OperationError` carries one clear sentence and a stable machine ``code`` (``invalid``,
``not_found``, ``conflict``); the CLI prints the sentence, the API answers with the code's status.
Reads (:mod:`conveyor.views`) and writes (:mod:`conveyor.operations`) raise it alike.
"""

from __future__ import annotations


class OperationError(Exception):
    """A request conveyor refuses, with the reason in words; ``code`` is a stable machine name."""

    def __init__(self, message: str, code: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.code, self.field = code, field  # field: the request field at fault, when there is one
