"""The base of every error cactus reports to a user as a message rather than a traceback."""


class CactusError(Exception):
    """An error whose message tells the user what went wrong and what to do next."""
