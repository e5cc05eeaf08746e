"""The local runtime: the real state machine and handlers, on moto and real MariaDB servers."""
