"""Benchmarks: the whole stack on loopback, measured. `python -m bench` prints a table and
writes JSON; tests never assert timings."""
