"""What a task raises to say how it failed."""


class PermanentError(Exception):
    """Raise from a task when trying again cannot help: the job is dead-lettered at once, without retries."""
