//! Guide: "Memory and Resource Management" — processing a large dataset in batches so only one
//! batch of results is in memory. `map` with a bounded `buffersize` does the same lazily.
use futurepool_threads::{MapOptions, ThreadPool};

fn memory_intensive_task(item: u64) -> u64 {
    // Stand-in for processing a large record: build and reduce a buffer.
    let data: Vec<u64> = (0..1_000).map(|i| i ^ item).collect();
    data.iter().sum()
}

fn main() {
    let large_dataset: Vec<u64> = (0..1_000).collect();
    let batch_size = 100;
    let pool = ThreadPool::new(4).unwrap();
    let mut batches = 0;
    let mut total = 0u64;
    for batch in large_dataset.chunks(batch_size) {
        let futures: Vec<_> = batch
            .iter()
            .map(|&item| pool.submit(move || memory_intensive_task(item)).unwrap())
            .collect();
        // Process this batch's results before moving on to the next batch.
        let results: Vec<u64> = futures.iter().map(|f| *f.result().unwrap()).collect();
        total += results.iter().sum::<u64>();
        batches += 1;
    }
    println!("Processed {batches} batches of {batch_size}: total {total}");

    // The same, lazily: at most 2 × batch_size tasks in flight, over an iterator that could be
    // endless.
    let opts = MapOptions::new().buffersize(2 * batch_size);
    let lazy_total: u64 = pool
        .map(memory_intensive_task, 0..1_000u64, opts)
        .unwrap()
        .map(Result::unwrap)
        .sum();
    assert_eq!(total, lazy_total);
    println!("Lazy map with bounded look-ahead: total {lazy_total}");
}
