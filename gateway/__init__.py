"""crosspatch: an open interoperability gateway for land-mobile radio."""

__version__ = "0.1.0"
