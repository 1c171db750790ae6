//! `pool fetch`: the guide's concurrent web scraper, done properly — URLs from arguments, a
//! file (`-i`) or stdin, fetched on the thread pool with reqwest (blocking, rustls); per URL as
//! it completes: status, bytes, content type, final URL, time, or the error (bad URL, DNS,
//! refused, TLS, timeout, redirects, body, save).
//!
//! * `client.rs` — the shared client: headers, User-Agent, redirects, connect timeout, DNS.
//! * `get.rs` — one URL: the deadline, streaming, retries, the per-host limit.
//! * `failure.rs` — why a URL failed, classified by error types and kinds.
//! * `save.rs` — `-o`/`-O`/`--output-dir`: targets and temporary files renamed when complete.

mod client;
mod failure;
mod get;
mod save;

use std::fs;
use std::io::{self, BufRead, IsTerminal, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futurepool_threads::{as_completed, Future, ThreadPool};
use reqwest::Url;

use crate::util::parse_seconds;
use crate::UsageError;
use failure::{Failure, Kind, Limits};
use get::{Fetched, HostLimits, Options};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// URLs to fetch (also read from `-i FILE`, or from stdin when neither is given).
    urls: Vec<String>,
    /// Read URLs from this file, one per line (`-` for stdin; `#` starts a comment).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: Option<String>,
    /// Requests in flight at once.
    #[arg(short = 'j', long, default_value = "8", value_parser = crate::util::parse_count)]
    jobs: NonZeroUsize,
    /// Seconds allowed per request attempt: connect, headers and the whole body.
    #[arg(long, allow_hyphen_values = true, default_value = "30", value_parser = parse_seconds, value_name = "SECS")]
    timeout: Duration,
    /// Seconds allowed to connect (default: the whole --timeout).
    #[arg(long, allow_hyphen_values = true, value_parser = parse_seconds, value_name = "SECS")]
    connect_timeout: Option<Duration>,
    /// Retry a failed request (an error that may pass, or a 5xx) this many times, with
    /// exponential backoff.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Redirects to follow before giving up.
    #[arg(long, default_value_t = 10)]
    max_redirects: usize,
    /// Connections to one host at once (default: the job count).
    #[arg(long, value_parser = crate::util::parse_count)]
    per_host: Option<NonZeroUsize>,
    /// The User-Agent header (default: `pool/VERSION`).
    #[arg(short = 'A', long = "user-agent", value_name = "AGENT")]
    user_agent: Option<String>,
    /// An extra request header, `Name: value` (repeatable; replaces a default of that name).
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = client::parse_header)]
    headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    /// A status of 400 or more is a failure (exit code 1, nothing saved).
    #[arg(long)]
    fail: bool,
    /// Save the body to FILE (repeatable: one per URL, in order).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    outputs: Vec<PathBuf>,
    /// Save each body under its URL's last path segment (`index.html` if none).
    #[arg(short = 'O', long = "remote-name")]
    remote_name: bool,
    /// Save bodies in DIR (created if missing); implies -O unless -o is given.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// One JSON object per URL.
    #[arg(long)]
    json: bool,
}

/// The URLs as given (arguments first, then `-i` or stdin); only reading them can fail.
fn gather(args: &Args) -> Result<Vec<String>> {
    let mut urls = args.urls.clone();
    let read_lines = |r: &mut dyn BufRead| -> Result<Vec<String>> {
        let mut out = Vec::new();
        for line in r.lines() {
            let line = line?;
            let line = line.trim();
            if !line.is_empty() && !line.starts_with('#') {
                out.push(line.to_string());
            }
        }
        Ok(out)
    };
    match args.input.as_deref() {
        Some("-") => urls.extend(read_lines(&mut io::stdin().lock())?),
        Some(path) => {
            let text = fs::read_to_string(path).with_context(|| path.to_string())?;
            urls.extend(read_lines(&mut text.as_bytes())?);
        }
        None if urls.is_empty() && !io::stdin().is_terminal() => {
            urls.extend(read_lines(&mut io::stdin().lock())?)
        }
        None => {}
    }
    if urls.is_empty() {
        anyhow::bail!("no URLs given (arguments, -i FILE, or stdin)");
    }
    Ok(urls)
}

/// A URL we can fetch, or why not.
fn check_url(url: &str) -> Result<Url, Failure> {
    match Url::parse(url) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(u),
        Ok(u) => Err(Failure::new(
            Kind::BadUrl,
            format!("unsupported scheme `{}` (http and https only)", u.scheme()),
        )),
        Err(e) => Err(Failure::new(Kind::BadUrl, format!("malformed URL ({e})"))),
    }
}

/// The per-URL line.
fn line(f: &Fetched, json: bool) -> String {
    let secs = f.time.as_secs_f64();
    match (&f.outcome, json) {
        (Ok(r), false) => {
            let mark = if r.success() { "✅" } else { "  " };
            let mut line = format!(
                "{mark} {}: {} ({} bytes, {}, {secs:.2}s)",
                f.url,
                get::status_text(r.status),
                r.bytes,
                r.content_type.as_deref().unwrap_or("no content type"),
            );
            if r.final_url != f.url {
                line += &format!(" → {}", r.final_url);
            }
            if let Some(path) = &r.saved {
                line += &format!(", saved to {}", path.display());
            }
            line + "\n"
        }
        (Err(e), false) => format!("❌ {}: {e}\n", f.url),
        (Ok(r), true) => json_line(&JsonOk {
            url: &f.url,
            status: r.status,
            bytes: r.bytes,
            content_type: r.content_type.as_deref(),
            final_url: &r.final_url,
            saved: r.saved.as_ref().map(|p| p.to_string_lossy()),
            time: millis(secs),
            attempts: f.attempts,
        }),
        (Err(e), true) => json_line(&JsonErr {
            url: &f.url,
            error: &e.detail,
            kind: e.kind.name(),
            time: millis(secs),
            attempts: f.attempts,
        }),
    }
}

/// A `--json` line for a fetched URL (fields in this order).
#[derive(serde::Serialize)]
struct JsonOk<'a> {
    url: &'a str,
    status: u16,
    bytes: u64,
    content_type: Option<&'a str>,
    final_url: &'a str,
    saved: Option<std::borrow::Cow<'a, str>>,
    time: f64,
    attempts: u32,
}

/// A `--json` line for a URL that failed.
#[derive(serde::Serialize)]
struct JsonErr<'a> {
    url: &'a str,
    error: &'a str,
    kind: &'a str,
    time: f64,
    attempts: u32,
}

/// Seconds rounded to the millisecond, as the text shows them.
fn millis(secs: f64) -> f64 {
    (secs * 1000.0).round() / 1000.0
}

fn json_line(value: &impl serde::Serialize) -> String {
    let mut line = serde_json::to_string(value).expect("plain data serializes");
    line.push('\n');
    line
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let given = gather(args).map_err(|e| UsageError(format!("{e:#}")))?;
    if !args.outputs.is_empty() && args.outputs.len() != given.len() {
        return Err(UsageError(format!(
            "{} -o files for {} URLs (give one -o per URL, or use -O)",
            args.outputs.len(),
            given.len()
        ))
        .into());
    }
    if let Some(dir) = &args.output_dir {
        fs::create_dir_all(dir)
            .map_err(|e| UsageError(format!("--output-dir {}: {e}", dir.display())))?;
    }
    let checked: Vec<Result<Url, Failure>> = given.iter().map(|u| check_url(u)).collect();
    let valid: Vec<Option<Url>> = checked.iter().map(|c| c.as_ref().ok().cloned()).collect();
    let targets = save::plan(
        &valid,
        &args.outputs,
        args.remote_name || args.output_dir.is_some(),
        args.output_dir.as_deref(),
    );
    let connect_timeout = args.connect_timeout.map(|c| c.min(args.timeout));
    let per_host = args.per_host.unwrap_or(args.jobs).get();
    let client = client::build(&client::Settings {
        user_agent: args
            .user_agent
            .as_deref()
            .unwrap_or(client::DEFAULT_USER_AGENT),
        headers: &args.headers,
        connect_timeout,
        max_redirects: args.max_redirects,
        idle_per_host: per_host,
    })
    .map_err(UsageError)?;
    let client = Arc::new(client);
    let hosts = Arc::new(HostLimits::new(per_host));
    let options = Options {
        limits: Limits {
            timeout: args.timeout,
            connect_timeout,
            max_redirects: args.max_redirects,
        },
        retries: args.retries,
        fail: args.fail,
    };
    let pool = ThreadPool::builder()
        .max_workers(args.jobs.get())
        .thread_name_prefix("pool-fetch")
        .build()?;
    let start = Instant::now();
    let total = given.len();
    let mut futures: Vec<Future<Fetched>> = Vec::with_capacity(total);
    for ((url, checked), target) in given.into_iter().zip(checked).zip(targets) {
        let future = match checked {
            // A bad URL is that URL's failure; the rest are fetched.
            Err(failure) => Future::ready(Fetched {
                url,
                outcome: Err(failure),
                attempts: 0,
                time: Duration::ZERO,
            }),
            Ok(parsed) => {
                let (client, hosts) = (client.clone(), hosts.clone());
                pool.submit(move || {
                    let begun = Instant::now();
                    let (outcome, attempts) =
                        get::fetch(&client, &hosts, &parsed, target.as_ref(), &options);
                    Fetched {
                        url,
                        outcome,
                        attempts,
                        time: begun.elapsed(),
                    }
                })?
            }
        };
        futures.push(future);
    }
    let (mut ok, mut other_status, mut failed, mut bytes) = (0usize, 0usize, 0usize, 0u64);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut open = true;
    let bar = crate::progress(total, "URLs");
    for done in as_completed(futures, None) {
        let future = done.expect("no timeout");
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let f = future.result().expect("fetch does not panic");
        match &f.outcome {
            Ok(r) => {
                bytes += r.bytes;
                if r.success() {
                    ok += 1;
                } else {
                    other_status += 1;
                }
            }
            Err(_) => failed += 1,
        }
        if open {
            let text = line(f, args.json);
            let written = crate::without_bar(bar.as_ref(), || {
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            });
            if let Err(e) = written {
                if e.kind() != io::ErrorKind::BrokenPipe {
                    return Err(e.into());
                }
                open = false;
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if open && !args.json {
        let others = if other_status > 0 {
            format!(", {other_status} other status")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "\n{total} URLs: {ok} ok{others}, {failed} failed, {bytes} bytes in {:.2} seconds",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
