//! `pool fetch`: the guide's concurrent web scraper, done properly — URLs from arguments, a
//! file (`-i`) or stdin, fetched on the thread pool with reqwest (blocking, rustls); per URL as
//! it completes: status, bytes, time, or the error (refused, DNS, timeout, TLS, redirects).
//! Bodies are streamed and counted, never held whole.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{json_string, parse_seconds};
use anyhow::{bail, Context, Result};
use futurepool_threads::{as_completed, ThreadPool};
use reqwest::Url;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// URLs to fetch (also read from `-i FILE`, or from stdin when neither is given).
    urls: Vec<String>,
    /// Read URLs from this file, one per line (`-` for stdin).
    #[arg(short = 'i', long = "input", value_name = "FILE")]
    input: Option<String>,
    /// Requests in flight at once.
    #[arg(short = 'j', long, default_value = "8")]
    jobs: NonZeroUsize,
    /// Seconds allowed per request (connect + headers + body).
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    timeout: Duration,
    /// Retry a failed request (error or 5xx) this many times, with exponential backoff.
    #[arg(long, default_value_t = 0)]
    retries: u32,
    /// Redirects to follow before giving up.
    #[arg(long, default_value_t = 10)]
    max_redirects: usize,
    /// Connections to one host at once (default: the job count).
    #[arg(long)]
    per_host: Option<NonZeroUsize>,
    /// One JSON object per URL.
    #[arg(long)]
    json: bool,
}

/// How one URL went.
#[derive(Debug, Clone)]
struct Fetched {
    url: String,
    outcome: Result<(u16, u64), String>,
    attempts: u32,
    time: Duration,
}

/// A counting semaphore per host.
#[derive(Default)]
struct HostLimits {
    limit: usize,
    hosts: Mutex<HashMap<String, usize>>,
    freed: Condvar,
}

impl HostLimits {
    fn acquire(&self, host: &str) {
        let mut hosts = self.hosts.lock().unwrap();
        while hosts.get(host).copied().unwrap_or(0) >= self.limit {
            hosts = self.freed.wait(hosts).unwrap();
        }
        *hosts.entry(host.to_string()).or_default() += 1;
    }

    fn release(&self, host: &str) {
        let mut hosts = self.hosts.lock().unwrap();
        if let Some(n) = hosts.get_mut(host) {
            *n -= 1;
        }
        drop(hosts);
        self.freed.notify_all();
    }
}

/// Names the kind of a transport error, with the innermost cause.
fn describe(e: &reqwest::Error) -> String {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_connect() {
        let lower = cause.to_lowercase();
        if lower.contains("dns") || lower.contains("lookup") || lower.contains("resolve") {
            "DNS"
        } else if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
        {
            "TLS"
        } else if lower.contains("refused") {
            "connection refused"
        } else {
            "connect"
        }
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    };
    format!("{kind}: {cause}")
}

/// One GET, streaming and counting the body.
fn get_once(client: &reqwest::blocking::Client, url: &str) -> Result<(u16, u64), String> {
    let mut response = client.get(url).send().map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    let mut buf = [0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let timeout = e.to_string().to_lowercase().contains("timed out");
                return Err(format!("{}: {e}", if timeout { "timeout" } else { "body" }));
            }
        }
    }
    Ok((status, bytes))
}

fn fetch(
    client: &reqwest::blocking::Client,
    limits: &HostLimits,
    url: String,
    retries: u32,
) -> Fetched {
    let start = Instant::now();
    let host = Url::parse(&url)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_default();
    let mut attempts = 0;
    loop {
        attempts += 1;
        limits.acquire(&host);
        let outcome = get_once(client, &url);
        limits.release(&host);
        let retryable = match &outcome {
            Ok((status, _)) => *status >= 500,
            Err(_) => true,
        };
        if !retryable || attempts > retries {
            return Fetched {
                url,
                outcome,
                attempts,
                time: start.elapsed(),
            };
        }
        thread::sleep(Duration::from_millis(100) * 2u32.pow((attempts - 1).min(6)));
    }
}

/// The URLs to fetch, all validated: a malformed one is bad input.
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
        bail!("no URLs given (arguments, -i FILE, or stdin)");
    }
    Ok(urls)
}

/// Errors that are the user's input, reported with exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

pub fn run(args: &Args) -> Result<ExitCode> {
    let urls = gather(args).map_err(|e| BadInput(format!("{e:#}")))?;
    for url in &urls {
        match Url::parse(url) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
            Ok(u) => {
                return Err(BadInput(format!("{url}: unsupported scheme `{}`", u.scheme())).into())
            }
            Err(e) => return Err(BadInput(format!("{url}: malformed URL ({e})")).into()),
        }
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(args.timeout)
        .redirect(reqwest::redirect::Policy::limited(args.max_redirects))
        .pool_max_idle_per_host(args.per_host.unwrap_or(args.jobs).get())
        .build()
        .context("cannot build the HTTP client")?;
    let client = Arc::new(client);
    let limits = Arc::new(HostLimits {
        limit: args.per_host.unwrap_or(args.jobs).get(),
        ..HostLimits::default()
    });
    let pool = ThreadPool::builder()
        .max_workers(args.jobs.get())
        .thread_name_prefix("pool-fetch")
        .build()?;
    let start = Instant::now();
    let futures: Vec<_> = urls
        .into_iter()
        .map(|url| {
            let (client, limits, retries) = (client.clone(), limits.clone(), args.retries);
            pool.submit(move || fetch(&client, &limits, url, retries))
        })
        .collect::<Result<_, _>>()?;
    let total = futures.len();
    let (mut ok, mut failed, mut bytes) = (0usize, 0usize, 0u64);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let mut open = true;
    let bar = crate::progress(total, "URLs");
    for done in as_completed(futures, None) {
        let future = done.expect("no timeout");
        if let Some(bar) = &bar {
            bar.inc(1);
        }
        let f = future.result().expect("fetch does not panic").clone();
        let line = match (&f.outcome, args.json) {
            (Ok((status, n)), false) => {
                ok += 1;
                bytes += n;
                format!(
                    "✅ {}: {status} ({n} bytes, {:.2}s)\n",
                    f.url,
                    f.time.as_secs_f64()
                )
            }
            (Err(e), false) => {
                failed += 1;
                format!("❌ {}: {e}\n", f.url)
            }
            (Ok((status, n)), true) => {
                ok += 1;
                bytes += n;
                format!(
                    "{{\"url\":{},\"status\":{status},\"bytes\":{n},\"time\":{:.3},\"attempts\":{}}}\n",
                    json_string(&f.url),
                    f.time.as_secs_f64(),
                    f.attempts
                )
            }
            (Err(e), true) => {
                failed += 1;
                format!(
                    "{{\"url\":{},\"error\":{},\"time\":{:.3},\"attempts\":{}}}\n",
                    json_string(&f.url),
                    json_string(e),
                    f.time.as_secs_f64(),
                    f.attempts
                )
            }
        };
        if open {
            if let Err(e) = out.write_all(line.as_bytes()) {
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
        let _ = writeln!(
            out,
            "\n{total} URLs: {ok} ok, {failed} failed, {bytes} bytes in {:.2} seconds",
            start.elapsed().as_secs_f64()
        );
    }
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
