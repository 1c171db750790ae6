//! Guide: "Practical Example: Web Scraping with Concurrency" — status, size and time per URL,
//! as they complete. Offline by default (a local server with the guide's endpoints); pass real
//! URLs as arguments. A refused connection or timeout is reported per URL and the rest go on.
use std::time::{Duration, Instant};

use futurepool_guide::{http_get, urls_or_local};
use futurepool_threads::{as_completed, ThreadPool};

struct PageInfo {
    url: String,
    outcome: Result<(u16, usize), String>,
    time: Duration,
}

fn fetch_page_info(url: String) -> PageInfo {
    let start = Instant::now();
    let outcome = http_get(&url, Duration::from_secs(10)).map(|p| (p.status, p.size));
    PageInfo {
        url,
        outcome,
        time: start.elapsed(),
    }
}

fn main() {
    let mut urls = urls_or_local(&[
        "/delay/1",
        "/delay/2",
        "/status/200",
        "/status/404",
        "/json",
    ]);
    if std::env::args().len() == 1 {
        // And one that refuses the connection: the error is reported, the rest go on.
        urls.push("http://127.0.0.1:9/".to_string());
    }
    println!("Starting concurrent web scraping...");
    let start = Instant::now();
    let pool = ThreadPool::new(3).unwrap();
    let futures: Vec<_> = urls
        .into_iter()
        .map(|u| pool.submit(move || fetch_page_info(u)).unwrap())
        .collect();
    for future in as_completed(futures, None) {
        let future = future.unwrap();
        let info = future.result().unwrap();
        match &info.outcome {
            Ok((status, size)) => println!(
                "✅ {}: {status} ({size} bytes, {:.2}s)",
                info.url,
                info.time.as_secs_f64()
            ),
            Err(e) => println!("❌ {}: {e}", info.url),
        }
    }
    println!("\nTotal time: {:.2} seconds", start.elapsed().as_secs_f64());
}
