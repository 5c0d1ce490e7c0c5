"""Stand-in for tinyllm.config.loader (the context example's Config)."""


class Config:
    """tinyllm's configuration; the context only keeps it."""

    def __init__(self, **values):
        self.values = dict(values)
