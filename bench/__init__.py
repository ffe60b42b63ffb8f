"""Benchmark: the hub measured against a bare aiohttp + lxml "floor" in one run (`python -m bench.run`)."""
