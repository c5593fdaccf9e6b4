"""The one exception type the runtime raises for problems a user can fix."""


class RtserError(Exception):
    """A user-facing error: its message is printed as one line, without a traceback."""
