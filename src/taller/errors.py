"""The one exception a user can fix.

Every error the user can act on is a `TallerError` with a single Spanish line saying what is wrong and how
to fix it. The command line prints it and exits with code 2; anything else is a bug in taller.
"""


class TallerError(Exception):
    """A problem with the user's input, files or configuration (message in Spanish)."""
