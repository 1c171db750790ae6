"""The guide's concurrent web scraper (requests + ThreadPoolExecutor + as_completed), as a
benchmark peer for `pool fetch`.

Usage: python3 guide_scraper.py WORKERS URLS_FILE
"""
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import requests


def fetch_page_info(url):
    try:
        start = time.time()
        r = requests.get(url, timeout=10)
        return {"url": url, "status": r.status_code, "size": len(r.content), "time": time.time() - start}
    except Exception as e:
        return {"url": url, "error": str(e), "time": 0}


def main():
    workers = int(sys.argv[1])
    urls = [l.strip() for l in open(sys.argv[2]) if l.strip()]
    ok = 0
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for fut in as_completed([ex.submit(fetch_page_info, u) for u in urls]):
            ok += "error" not in fut.result()
    print(ok, len(urls))


if __name__ == "__main__":
    main()
