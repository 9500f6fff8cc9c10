"""Inputs too long for the memory: an out-of-memory failure becomes an error naming the setting to change."""

from __future__ import annotations


class InputMemoryError(MemoryError):
    """A batch of long inputs ran out of (GPU or host) memory; says which setting to change."""


OOM_MARKERS = ("out of memory", "can't allocate memory", "not enough memory")


class memory_guard:
    """Turn an out-of-memory failure inside the block into :class:`InputMemoryError` with ``advice``."""

    def __init__(self, what: str, advice: str):
        self.what, self.advice = what, advice

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or isinstance(err, InputMemoryError):
            return False
        message = str(err).lower()
        if isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and any(m in message for m in OOM_MARKERS)):
            raise InputMemoryError(f"{self.what} ran out of memory ({type(err).__name__}); {self.advice}") from err
        return False
