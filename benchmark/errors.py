"""Errors of the benchmark library (plain ValueError subclasses, message meant for a person)."""


class BenchmarkInputError(ValueError):
    """Bad input (labels, predictions, options): the message says what is wrong and what is allowed."""
