"""Protocol helpers that speak over a Stream (a tunnel from the host), never a local socket."""
