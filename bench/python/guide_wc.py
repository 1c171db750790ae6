"""The guide's concurrent file processor (ThreadPoolExecutor + as_completed), as a benchmark
peer for `pool wc`: counts lines, words, chars and bytes of every file under a directory.

Usage: python3 guide_wc.py WORKERS PATH
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path


def process_file(file_path):
    try:
        with open(file_path, "r", encoding="utf-8", errors="replace") as f:
            content = f.read()
        return {
            "size_bytes": len(content.encode("utf-8")),
            "lines": len(content.splitlines()),
            "words": len(content.split()),
            "chars": len(content),
        }
    except Exception as e:
        return {"error": str(e)}


def main():
    workers, root = int(sys.argv[1]), Path(sys.argv[2])
    files = [p for p in root.rglob("*") if p.is_file()]
    totals = {"lines": 0, "words": 0, "chars": 0}
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for fut in as_completed([ex.submit(process_file, p) for p in files]):
            r = fut.result()
            for k in totals:
                totals[k] += r.get(k, 0)
    print(len(files), totals["lines"], totals["words"], totals["chars"])


if __name__ == "__main__":
    main()
