"""The schema as ordered SQL migrations; shipped as the ``portalctl.sql`` package data."""
