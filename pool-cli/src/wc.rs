//! `pool wc`: the guide's concurrent file processor — lines, words, characters and bytes per
//! file, identical to GNU `wc -lwmc` under `LC_ALL=C.UTF-8`, counted on the thread pool or the
//! process pool.
//!
//! GNU's rules, reproduced: a line is a `\n` byte; a character is a valid UTF-8 sequence
//! (NUL included); an invalid byte is skipped, counted as neither a character nor anything
//! else; a word is a maximal run of printable characters between separators, where
//! non-printable characters (controls, unassigned code points) neither start nor end a word.
//! The character classes are glibc's, in `wc_classes.rs`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::num::NonZeroUsize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use futurepool_procs::ProcessPool;
use futurepool_threads::{as_completed, Future, FutureError, Promise, ThreadPool};
use serde::{Deserialize, Serialize};

use crate::wc_classes::{NON_PRINTABLE, SEPARATORS};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and directories (directories are walked recursively). Default: `.`.
    paths: Vec<PathBuf>,
    /// Only files whose name matches this pattern (`*` and `?`), e.g. `*.txt`.
    #[arg(long)]
    glob: Option<String>,
    /// Count on threads or in worker processes.
    #[arg(long, value_enum, default_value_t = Backend::Threads)]
    backend: Backend,
    /// Workers (default: threads min(32, cores + 4); processes: cores).
    #[arg(short = 'j', long)]
    jobs: Option<NonZeroUsize>,
    /// Print files in the order they were found (default: as they finish).
    #[arg(long)]
    keep_order: bool,
    /// One JSON object per file (and one for the total).
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Threads,
    Processes,
}

/// One file's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub lines: u64,
    pub words: u64,
    pub chars: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.lines += o.lines;
        self.words += o.words;
        self.chars += o.chars;
        self.bytes += o.bytes;
    }
}

fn in_ranges(c: u32, ranges: &[(u32, u32)]) -> bool {
    ranges
        .binary_search_by(|&(lo, hi)| {
            if c < lo {
                std::cmp::Ordering::Greater
            } else if c >= hi {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// ASCII bytes by what they do: not printable, printable, separator, newline (a separator that
/// also ends a line); `NON_ASCII` starts a multibyte sequence (or is invalid).
const OTHER: u8 = 0;
const PRINT: u8 = 1;
const SEPARATOR: u8 = 2;
const NEWLINE: u8 = 3;
const NON_ASCII: u8 = 4;

static ASCII: [u8; 256] = {
    let mut t = [NON_ASCII; 256];
    let mut b = 0;
    while b < 128 {
        t[b] = match b as u8 {
            b'\n' => NEWLINE,
            b'\t' | 0x0b | 0x0c | b'\r' | b' ' => SEPARATOR,
            0x21..=0x7e => PRINT,
            _ => OTHER,
        };
        b += 1;
    }
    t
};

/// The high bit of each byte lane.
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Lanes (high bit) whose byte is `>= c`, for eight bytes that are all below 0x80 and `c <= 0x80`:
/// setting each lane's high bit first means the subtraction never borrows across lanes.
const fn ge(x: u64, c: u8) -> u64 {
    ((x | HIGH) - 0x0101_0101_0101_0101 * c as u64) & HIGH
}

/// What a character does to a word.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Separator,
    Printable,
    Other,
}

fn class(c: u32) -> Class {
    if c < 0x80 {
        return match c as u8 {
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => Class::Separator,
            0x21..=0x7e => Class::Printable,
            _ => Class::Other,
        };
    }
    if c > 0x10_ffff {
        // Beyond Unicode (the old long forms glibc decodes): not printable.
        Class::Other
    } else if in_ranges(c, SEPARATORS) {
        Class::Separator
    } else if in_ranges(c, NON_PRINTABLE) {
        Class::Other
    } else {
        Class::Printable
    }
}

/// One multibyte sequence, decoded the way glibc's UTF-8 `mbrtowc` does: like UTF-8 but also
/// accepting the old 4- to 6-byte forms up to 0x7FFFFFFF (so `F4 90 80 80` is one character);
/// overlong forms and surrogates are invalid.
enum Decoded {
    Char(u32, usize),
    Invalid,
    /// Valid so far, but the buffer ends first.
    Incomplete,
}

fn decode(buf: &[u8]) -> Decoded {
    let lead = buf[0];
    let (len, min, init) = match lead {
        0xc2..=0xdf => (2, 0x80, u32::from(lead & 0x1f)),
        0xe0..=0xef => (3, 0x800, u32::from(lead & 0x0f)),
        0xf0..=0xf7 => (4, 0x1_0000, u32::from(lead & 0x07)),
        0xf8..=0xfb => (5, 0x20_0000, u32::from(lead & 0x03)),
        0xfc..=0xfd => (6, 0x400_0000, u32::from(lead & 0x01)),
        _ => return Decoded::Invalid,
    };
    let mut c = init;
    for k in 1..len {
        let Some(&b) = buf.get(k) else {
            return Decoded::Incomplete;
        };
        if b & 0xc0 != 0x80 {
            return Decoded::Invalid;
        }
        c = (c << 6) | u32::from(b & 0x3f);
        // Reject overlong forms as soon as the second byte shows them.
        if k == 1 && (c << (6 * (len - 2))) < min {
            return Decoded::Invalid;
        }
    }
    if (0xd800..0xe000).contains(&c) {
        return Decoded::Invalid;
    }
    Decoded::Char(c, len)
}

/// Streaming counter: feed it buffers in order, then `finish`.
#[derive(Default)]
pub struct Counter {
    counts: Counts,
    in_word: bool,
    /// Bytes of a UTF-8 sequence cut by the end of the previous buffer.
    carry: Vec<u8>,
}

impl Counter {
    pub fn feed(&mut self, buf: &[u8]) {
        self.counts.bytes += buf.len() as u64;
        if self.carry.is_empty() {
            let n = self.scan(buf, false);
            self.carry.extend_from_slice(&buf[n..]);
        } else {
            // A sequence was cut by the previous buffer's end (rare): join and rescan.
            let mut joined = std::mem::take(&mut self.carry);
            joined.extend_from_slice(buf);
            let n = self.scan(&joined, false);
            self.carry = joined[n..].to_vec();
        }
    }

    /// Scans `buf`; returns how many bytes it consumed (all but an incomplete trailing
    /// sequence, unless `last`, when every byte is consumed).
    fn scan(&mut self, buf: &[u8], last: bool) -> usize {
        // Counters in locals: the hot loop keeps them in registers.
        let (mut chars, mut lines, mut words) = (0u64, 0u64, 0u64);
        let mut in_word = self.in_word;
        let mut i = 0;
        let n = buf.len();
        let mut stop = n;
        while i < n {
            // Eight plain-ASCII bytes (printable or separators, no controls) at once.
            if let Some(block) = buf.get(i..i + 8) {
                let x = u64::from_le_bytes(block.try_into().expect("8 bytes"));
                if x & HIGH == 0 {
                    let printable = ge(x, 0x21) & !ge(x, 0x7f);
                    let separator = (ge(x, 0x09) & !ge(x, 0x0e)) | (ge(x, 0x20) & !ge(x, 0x21));
                    if printable | separator == HIGH {
                        let newline = ge(x, 0x0a) & !ge(x, 0x0b);
                        lines += u64::from(newline.count_ones());
                        chars += 8;
                        // A word ends at a separator right after a printable byte.
                        let before = (printable << 8) | if in_word { 0x80 } else { 0 };
                        words += u64::from((separator & before).count_ones());
                        in_word = printable >> 63 != 0;
                        i += 8;
                        continue;
                    }
                }
            }
            let b = buf[i];
            let t = ASCII[b as usize];
            if t != NON_ASCII {
                chars += 1;
                lines += u64::from(t == NEWLINE);
                let separates = t >= SEPARATOR;
                words += u64::from(in_word && separates);
                in_word = (in_word || t == PRINT) && !separates;
                i += 1;
                continue;
            }
            match decode(&buf[i..]) {
                Decoded::Char(c, len) => {
                    chars += 1;
                    match class(c) {
                        Class::Separator => {
                            words += u64::from(in_word);
                            in_word = false;
                        }
                        Class::Printable => in_word = true,
                        Class::Other => {}
                    }
                    i += len;
                }
                // Possibly cut by the buffer end: keep it for the next buffer.
                Decoded::Incomplete if !last => {
                    stop = i;
                    break;
                }
                // Invalid (or incomplete at the very end): skip its first byte, as wc does
                // when mbrtowc fails.
                Decoded::Incomplete | Decoded::Invalid => i += 1,
            }
        }
        self.counts.chars += chars;
        self.counts.lines += lines;
        self.counts.words += words;
        self.in_word = in_word;
        stop
    }

    fn words_end(&mut self) {
        if self.in_word {
            self.counts.words += 1;
            self.in_word = false;
        }
    }

    pub fn finish(mut self) -> Counts {
        // Bytes of an incomplete sequence at the end of input are not characters.
        let carry = std::mem::take(&mut self.carry);
        self.scan(&carry, true);
        self.words_end();
        self.counts
    }
}

/// Counts one file, streaming it.
pub fn count_file(path: String) -> Result<Counts, String> {
    thread_local! {
        /// One read buffer per worker thread: a fresh 256 KiB buffer per file would cost an
        /// mmap, page faults and an munmap for every small file.
        static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 256 * 1024]);
    }
    let mut file = File::open(&path).map_err(|e| e.to_string())?;
    BUF.with_borrow_mut(|buf| {
        let mut counter = Counter::default();
        loop {
            let n = match file.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.to_string()),
            };
            counter.feed(&buf[..n]);
        }
        Ok(counter.finish())
    })
}

/// Counts a batch of files in one process-pool call, each file with its own outcome.
pub fn count_files(paths: Vec<String>) -> Vec<Result<Counts, String>> {
    paths.into_iter().map(count_file).collect()
}

futurepool_procs::register!(count_files);

/// A process-pool call counts up to this many files …
const BATCH_FILES: usize = 64;
/// … or files until this many bytes, so that a round trip per small file does not dominate
/// while large files still spread over the workers.
const BATCH_BYTES: u64 = 4 << 20;

/// Submits `names` to the process pool in batches and returns one future per file: a batch's
/// outcome is handed to its files' promises by a done-callback, so a dead worker fails exactly
/// the files of its batch.
fn submit_batches(
    pool: &ProcessPool,
    names: &[String],
    sizes: &[u64],
) -> Result<Vec<Future<Counts, String>>> {
    let mut futures = Vec::with_capacity(names.len());
    let mut start = 0;
    while start < names.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < names.len()
            && end - start < BATCH_FILES
            && (end == start || bytes < BATCH_BYTES)
        {
            bytes += sizes[end];
            end += 1;
        }
        let batch = pool.submit(count_files, names[start..end].to_vec())?;
        let promises: Vec<Promise<Counts, String>> = (start..end)
            .map(|_| {
                let (future, promise) = Future::pending();
                futures.push(future);
                promise
            })
            .collect();
        batch.add_done_callback(move |done| match done.result() {
            Ok(outcomes) => {
                for (promise, outcome) in promises.into_iter().zip(outcomes) {
                    let _ = promise.set_outcome(outcome.clone().map_err(FutureError::Raised));
                }
            }
            Err(e) => {
                for promise in promises {
                    let _ = promise.set_outcome(Err(e.clone().map_raised(|never| match *never {})));
                }
            }
        });
        start = end;
    }
    Ok(futures)
}

/// `*` and `?` against a file name.
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// Expands the arguments into files, reporting what cannot be walked.
fn collect(args: &Args, files: &mut Vec<PathBuf>, errors: &mut Vec<(PathBuf, String)>) {
    let roots = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    for root in roots {
        let mut visited = HashSet::new();
        walk(
            &root,
            args.glob.as_deref(),
            true,
            files,
            errors,
            &mut visited,
        );
    }
}

fn walk(
    path: &Path,
    glob: Option<&str>,
    explicit: bool,
    files: &mut Vec<PathBuf>,
    errors: &mut Vec<(PathBuf, String)>,
    visited: &mut HashSet<(u64, u64)>,
) {
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            let why = if e.raw_os_error() == Some(libc::ELOOP) {
                "symbolic link loop".to_string()
            } else {
                e.to_string()
            };
            errors.push((path.to_path_buf(), why));
            return;
        }
    };
    if meta.is_dir() {
        if !visited.insert((meta.dev(), meta.ino())) {
            errors.push((
                path.to_path_buf(),
                "directory visited twice (symbolic link loop)".into(),
            ));
            return;
        }
        let entries = match fs::read_dir(path) {
            Ok(d) => d,
            Err(e) => {
                errors.push((path.to_path_buf(), e.to_string()));
                return;
            }
        };
        let mut children: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            walk(&child, glob, false, files, errors, visited);
        }
    } else {
        let name = path
            .file_name()
            .map(|n| n.as_encoded_bytes())
            .unwrap_or_default();
        if explicit || glob.is_none_or(|g| glob_match(g.as_bytes(), name)) {
            files.push(path.to_path_buf());
        }
    }
}

struct Printer<'a> {
    out: io::StdoutLock<'a>,
    json: bool,
    width: usize,
    open: bool,
}

impl Printer<'_> {
    fn line(&mut self, c: &Counts, name: &str) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        let text = if self.json {
            format!(
                "{{\"path\":{},\"lines\":{},\"words\":{},\"chars\":{},\"bytes\":{}}}\n",
                crate::util::json_string(name),
                c.lines,
                c.words,
                c.chars,
                c.bytes
            )
        } else {
            let w = self.width;
            format!(
                "{:>w$} {:>w$} {:>w$} {:>w$} {name}\n",
                c.lines, c.words, c.chars, c.bytes
            )
        };
        if let Err(e) = self.out.write_all(text.as_bytes()) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                self.open = false;
                return Ok(());
            }
            return Err(e.into());
        }
        Ok(())
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    collect(args, &mut files, &mut errors);
    for (path, why) in &errors {
        eprintln!("pool wc: {}: {why}", path.display());
    }
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| fs::metadata(f).map_or(0, |m| m.len()))
        .collect();
    // GNU wc sizes its columns from the total size of the files.
    let total_size: u64 = sizes.iter().sum();
    let width = total_size.max(1).to_string().len();
    let stdout = io::stdout();
    let mut printer = Printer {
        out: stdout.lock(),
        json: args.json,
        width,
        open: true,
    };

    let names: Vec<String> = files
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect();
    // Both pools outlive the loop below that reads the futures as they complete.
    let mut threads = None;
    let mut processes = None;
    let futures: Vec<Future<Counts, String>> = match args.backend {
        Backend::Threads => {
            let pool = threads.insert(match args.jobs {
                Some(j) => ThreadPool::new(j.get())?,
                None => ThreadPool::with_default_workers(),
            });
            names
                .iter()
                .map(|n| {
                    let n = n.clone();
                    pool.submit_fallible(move || count_file(n))
                })
                .collect::<Result<_, _>>()?
        }
        Backend::Processes => {
            let workers = args.jobs.map_or_else(
                || std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
                NonZeroUsize::get,
            );
            let pool = processes.insert(ProcessPool::new(workers)?);
            submit_batches(pool, &names, &sizes)?
        }
    };
    let mut total = Counts::default();
    let mut failed = !errors.is_empty();
    let bar = crate::progress(names.len(), "files");
    let mut report =
        |i: usize, f: &Future<Counts, String>, printer: &mut Printer<'_>| -> Result<()> {
            if let Some(bar) = &bar {
                bar.inc(1);
            }
            match f.result() {
                Ok(c) => {
                    total += *c;
                    printer.line(c, &names[i])?;
                }
                Err(FutureError::Raised(why)) => {
                    failed = true;
                    eprintln!("pool wc: {}: {why}", names[i]);
                }
                Err(e) => {
                    failed = true;
                    eprintln!("pool wc: {}: {e}", names[i]);
                }
            }
            Ok(())
        };
    if args.keep_order {
        for (i, f) in futures.iter().enumerate() {
            report(i, f, &mut printer)?;
        }
    } else {
        let index: std::collections::HashMap<Future<Counts, String>, usize> = futures
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, f)| (f, i))
            .collect();
        for f in as_completed(futures.iter().cloned(), None) {
            let f = f.expect("no timeout");
            report(index[&f], &f, &mut printer)?;
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if names.len() > 1 {
        printer.line(&total, "total")?;
    }
    drop((threads, processes));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(bytes: &[u8]) -> Counts {
        let mut c = Counter::default();
        c.feed(bytes);
        c.finish()
    }

    /// The same counts however the input is cut into buffers.
    #[test]
    fn buffer_boundaries_do_not_matter() {
        let mut text = "héllo wörld\u{a0}x\u{2028}y 日本語 \u{1F600}\n"
            .as_bytes()
            .to_vec();
        text.extend_from_slice(b"\xff\xe2\x82 ok \xf0\x9f\x98");
        let whole = count(&text);
        for cut in 1..text.len() {
            let mut c = Counter::default();
            c.feed(&text[..cut]);
            c.feed(&text[cut..]);
            assert_eq!(c.finish(), whole, "cut at {cut}");
        }
    }

    /// The eight-bytes-at-a-time path agrees with the byte-at-a-time one, at every alignment.
    #[test]
    fn block_path_agrees_with_byte_path() {
        let text: Vec<u8> =
            b"plain words  and\ttabs\r\nlines\x01ctl\x7f  end\nx yz\x0b\x0cq".repeat(3);
        for start in 0..8 {
            let slice = &text[start..];
            let by_block = count(slice);
            let mut by_byte = Counter::default();
            for b in slice {
                by_byte.feed(std::slice::from_ref(b)); // one byte at a time: never 8 in a row
            }
            assert_eq!(by_block, by_byte.finish(), "offset {start}");
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match(b"*.txt", b"a.txt"));
        assert!(!glob_match(b"*.txt", b"a.txt.bak"));
        assert!(glob_match(b"?.rs", b"a.rs"));
        assert!(glob_match(b"*", b""));
    }
}
