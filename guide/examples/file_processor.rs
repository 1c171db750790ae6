//! Guide: "Real-World Application: Building a Concurrent File Processor". Processes the `.txt`
//! files of the directory given as argument (default: a generated sample directory) and prints
//! per-file statistics as they complete, then a summary.
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futurepool_threads::{as_completed, ThreadPool};

#[derive(Debug, Clone)]
struct Stats {
    size_bytes: usize,
    lines: usize,
    words: usize,
    chars: usize,
    processing_time: Duration,
}

fn process_file(path: &Path) -> Result<Stats, String> {
    let start = Instant::now();
    let content = fs::read_to_string(path).map_err(|e| e.to_string())?;
    Ok(Stats {
        size_bytes: content.len(),
        lines: content.lines().count(),
        words: content.split_whitespace().count(),
        chars: content.chars().count(),
        processing_time: start.elapsed(),
    })
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn process_directory_concurrent(
    directory: &Path,
    max_workers: usize,
) -> Vec<Result<Stats, String>> {
    let mut text_files: Vec<PathBuf> = fs::read_dir(directory)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "txt"))
                .collect()
        })
        .unwrap_or_default();
    text_files.sort();
    if text_files.is_empty() {
        println!("No .txt files found in directory");
        return Vec::new();
    }
    println!(
        "Processing {} files with {max_workers} workers...",
        text_files.len()
    );
    let start = Instant::now();
    let pool = ThreadPool::new(max_workers).unwrap();
    let mut future_to_file = HashMap::new();
    for path in &text_files {
        let p = path.clone();
        let future = pool.submit(move || process_file(&p)).unwrap();
        future_to_file.insert(future.clone(), path.clone());
    }
    let mut results = Vec::new();
    for future in as_completed(future_to_file.keys().cloned(), None) {
        let future = future.unwrap();
        let path = &future_to_file[&future];
        match future.result().unwrap() {
            Ok(stats) => println!(
                "✅ {}: {} lines, {} words ({:.3}s)",
                name(path),
                stats.lines,
                stats.words,
                stats.processing_time.as_secs_f64()
            ),
            Err(e) => println!("❌ {}: {e}", name(path)),
        }
        // The map still holds a handle, so this clones the stats rather than moving them.
        results.push(future.into_result().unwrap_or_else(|e| Err(e.to_string())));
    }
    println!(
        "\nProcessed {} files in {:.2} seconds",
        text_files.len(),
        start.elapsed().as_secs_f64()
    );
    results
}

fn sample_directory() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("futurepool-guide-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    for i in 0..8 {
        let text = "the quick brown fox jumps over the lazy dog\n".repeat(10 * (i + 1));
        fs::write(dir.join(format!("file{i}.txt")), text).unwrap();
    }
    // Not valid UTF-8: reported as an error, the rest go on.
    fs::write(dir.join("binary.txt"), [0xff, 0xfe, 0x00]).unwrap();
    dir
}

fn main() {
    let (dir, generated) = match std::env::args().nth(1) {
        Some(d) => (PathBuf::from(d), false),
        None => (sample_directory(), true),
    };
    let results = process_directory_concurrent(&dir, 6);
    if !results.is_empty() {
        let ok: Vec<&Stats> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        println!("\nSummary:");
        println!("Files processed: {}", ok.len());
        println!("Total lines: {}", ok.iter().map(|s| s.lines).sum::<usize>());
        println!("Total words: {}", ok.iter().map(|s| s.words).sum::<usize>());
        println!(
            "Total bytes: {}",
            ok.iter().map(|s| s.size_bytes).sum::<usize>()
        );
        println!("Total chars: {}", ok.iter().map(|s| s.chars).sum::<usize>());
    }
    if generated {
        let _ = fs::remove_dir_all(&dir);
    }
}
