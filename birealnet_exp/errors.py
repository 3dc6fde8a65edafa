"""The one exception type for bad input: its message is one line naming the problem and the fix."""


class UsageError(ValueError):
    """Bad config, data, checkpoint or environment; shown as one line, without a traceback."""
