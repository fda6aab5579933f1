"""portalctl: the administrative command line for the provider portal database."""

__version__ = "0.1.0"
