"""Local fake platforms and spec checkers for the channel tests (loopback only)."""
