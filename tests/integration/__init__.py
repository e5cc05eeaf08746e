"""Integration tests: MariaDB and moto (handlers with events/*.json, the local runtime)."""
