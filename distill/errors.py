"""The one exception type a user sees as a one-line error instead of a traceback."""


class DistillError(Exception):
    """A problem with the user's input or environment; the message says what and how to fix it."""
