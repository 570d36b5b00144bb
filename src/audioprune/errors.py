"""Errors that are the user's to fix: the CLI prints them without a traceback and exits non-zero."""


class UserError(Exception):
    """A bad file, option or data tree; the message says which and what to do."""


class AudioDecodeError(UserError):
    """An audio file that cannot be decoded into finite samples."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN/Inf: a setting (usually the learning rate) to change, not a bug."""
