"""The one error type trainlab raises for bad user input (config keys and values, data files)."""


class ConfigError(ValueError):
    """A config value, data file or combination of them that trainlab cannot use.

    The message names the key or file and says what would be valid.
    """
