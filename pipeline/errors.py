"""The one exception type for user mistakes: the CLI prints it and exits with code 2."""


class UserError(Exception):
    """A problem the user can fix (bad recipe, missing file, wrong column); never a bug."""

    def __init__(self, message: str, hint: str | None = None):
        self.message, self.hint = message, hint
        super().__init__(message if hint is None else f"{message}\n  how to fix: {hint}")
