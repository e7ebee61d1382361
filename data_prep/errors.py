"""The one exception type data preparation raises for bad input."""


class DataPrepError(ValueError):
    """Bad input for data preparation (layout, CSV, labels, counts); the message names the file."""
