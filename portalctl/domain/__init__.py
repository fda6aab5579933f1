"""The library: one module per capability, each taking a connection and returning plain data."""
