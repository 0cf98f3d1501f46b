"""The outside world on one machine, for tests, benchmarks and the demo.

Product code (bot/, handlers/) never imports this package.
"""
