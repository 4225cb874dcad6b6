"""Exception types: bad user input is an ``InputError``, reported without a traceback."""


class InputError(ValueError):
    """Input that cannot be used: the message says what was wrong and what to do."""


class PeriodicityError(InputError):
    """An RVE mesh whose opposite faces do not match node for node."""
