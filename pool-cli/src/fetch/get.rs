//! One URL: a GET under one deadline per attempt (connect, headers and the whole body, however
//! slowly it trickles), the body streamed to a counter or a [`Partial`] file, retries with
//! exponential backoff, and a per-host limit on requests in flight.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::Url;

use super::failure::{Failure, Kind, Limits};
use super::save::Partial;

/// What a completed request returned.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub bytes: u64,
    /// The URL after redirects.
    pub final_url: String,
    pub content_type: Option<String>,
    /// Where the body was saved.
    pub saved: Option<PathBuf>,
}

impl Response {
    /// 2xx and 3xx: the ✅ statuses.
    pub fn success(&self) -> bool {
        (200..400).contains(&self.status)
    }
}

/// How one URL went.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// The URL as the user gave it.
    pub url: String,
    pub outcome: Result<Response, Failure>,
    pub attempts: u32,
    pub time: Duration,
}

/// The per-request settings.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub limits: Limits,
    pub retries: u32,
    /// `--fail`: a status of 400 or more is a failure (and nothing is saved).
    pub fail: bool,
}

/// A counting semaphore per host.
#[derive(Debug, Default)]
pub struct HostLimits {
    pub limit: usize,
    hosts: Mutex<HashMap<String, usize>>,
    freed: Condvar,
}

impl HostLimits {
    pub fn new(limit: usize) -> HostLimits {
        HostLimits {
            limit,
            ..HostLimits::default()
        }
    }

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

/// One attempt: everything within `options.limits.timeout` of its start.
fn attempt(
    client: &reqwest::blocking::Client,
    url: &Url,
    target: Option<&PathBuf>,
    options: &Options,
) -> Result<Response, Failure> {
    let limits = &options.limits;
    let https = url.scheme() == "https";
    let deadline = Instant::now() + limits.timeout;
    // The request's own timeout is a total one in reqwest: it also bounds the body.
    let mut response = client
        .get(url.clone())
        .timeout(limits.timeout)
        .send()
        .map_err(|e| Failure::classify(&e, limits, https))?;
    let status = response.status();
    let final_url = response.url().to_string();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if options.fail && status.as_u16() >= 400 {
        // Nothing read, nothing saved: `fetch` turns this into a failure after any retries.
        return Ok(Response {
            status: status.as_u16(),
            bytes: 0,
            final_url,
            content_type,
            saved: None,
        });
    }
    let mut partial = match target {
        Some(path) => Some(
            Partial::create(path)
                .map_err(|e| Failure::new(Kind::Save, format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = match response.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::classify(&e, limits, https)),
        };
        bytes += n as u64;
        if let Some(p) = partial.as_mut() {
            p.write_all(&buf[..n]).map_err(|e| {
                Failure::new(Kind::Save, format!("{}: {e}", target.unwrap().display()))
            })?;
        }
        // reqwest's total timeout ends a stalled body; this ends one that trickles between
        // its wake-ups.
        if Instant::now() >= deadline {
            return Err(Failure::timeout(limits));
        }
    }
    let saved = match partial {
        Some(p) => Some(p.commit().map_err(|e| {
            Failure::new(Kind::Save, format!("{}: {e}", target.unwrap().display()))
        })?),
        None => None,
    };
    Ok(Response {
        status: status.as_u16(),
        bytes,
        final_url,
        content_type,
        saved,
    })
}

/// Fetches one URL with retries (an error that may pass, or a 5xx), each attempt under the
/// host's limit.
pub fn fetch(
    client: &reqwest::blocking::Client,
    hosts: &HostLimits,
    url: &Url,
    target: Option<&PathBuf>,
    options: &Options,
) -> (Result<Response, Failure>, u32) {
    let host = url.host_str().unwrap_or_default().to_string();
    let mut attempts = 0;
    loop {
        attempts += 1;
        hosts.acquire(&host);
        let outcome = attempt(client, url, target, options);
        hosts.release(&host);
        let retryable = match &outcome {
            Ok(r) => r.status >= 500,
            Err(f) => f.kind.retryable(),
        };
        if !retryable || attempts > options.retries {
            let outcome = match outcome {
                Ok(r) if options.fail && r.status >= 400 => Err(Failure::new(
                    Kind::Http,
                    format!("status {} (--fail)", status_text(r.status)),
                )),
                other => other,
            };
            return (outcome, attempts);
        }
        thread::sleep(Duration::from_millis(100) * 2u32.pow((attempts - 1).min(6)));
    }
}

/// `404 Not Found`.
pub fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}
