"""StateStore apply throughput table (or --json): see tradelab/benchmarking/store.py.

Usage: python benchmarks/store.py [--n 100000] [--rounds 5] [--rate-hz 20] [--json]
"""

from tradelab.benchmarking.store import main

if __name__ == "__main__":
    main()
