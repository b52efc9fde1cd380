"""How to reach a host: run commands on it and open TCP streams from its network position."""
