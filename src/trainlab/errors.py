"""The one error type trainlab raises for bad user input (config keys and values, data files)."""


class ConfigError(ValueError):
    """A config value, data file or combination of them that trainlab cannot use.

    The message names the key or file and says what would be valid.
    """


class DataError(ConfigError):
    """Bad data found while the run trains (an image a worker cannot read): the run stops
    naming it, and keeps what it wrote, to resume from once the data is fixed."""
