"""Event bus throughput table (or --json): see tradelab/benchmarking/bus.py for what is measured.

Usage: python benchmarks/bus.py [--n 1000000] [--rounds 5] [--json]
"""

from tradelab.benchmarking.bus import main

if __name__ == "__main__":
    main()
