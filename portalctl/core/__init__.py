"""Core pieces shared by every capability: config, database, schema, values, I/O, errors."""
