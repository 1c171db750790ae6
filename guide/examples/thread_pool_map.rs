//! Guide: "ThreadPoolExecutor: For I/O-Bound Tasks" — `map` fetching URLs. With no arguments it
//! fetches from a local server with the guide's /delay endpoints; pass real URLs to fetch them.
use std::time::Duration;

use futurepool_guide::{http_get, urls_or_local};
use futurepool_threads::{MapOptions, ThreadPool};

fn fetch_url(url: String) -> usize {
    println!("Starting to fetch {url}");
    let size = http_get(&url, Duration::from_secs(10))
        .map(|p| p.size)
        .unwrap_or(0);
    println!("Finished fetching {url}");
    size
}

fn main() {
    let urls = urls_or_local(&["/delay/1", "/delay/2", "/delay/1"]);
    let pool = ThreadPool::new(3).unwrap();
    // `map` keeps input order, like Python's.
    let results: Vec<usize> = pool
        .map(fetch_url, urls, MapOptions::default())
        .unwrap()
        .map(Result::unwrap)
        .collect();
    println!("Content lengths: {results:?}");
}
