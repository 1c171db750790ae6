//! Helpers for the guide's examples (`cargo run -p futurepool-guide --example <lesson>`): the
//! local HTTP server with the guide's endpoints (testkit's), so every example runs offline, and a blocking
//! HTTP GET.
//!
//! The guide's sleeps are seconds long; the examples scale them by [`SCALE`] so the whole set
//! runs in seconds. The output says so.
//!
//! The guide's first pitfall — shared mutable state touched by several threads — does not
//! compile in Rust:
//!
//! ```compile_fail
//! use futurepool_threads::ThreadPool;
//!
//! let pool = ThreadPool::new(4).unwrap();
//! let mut counter = 0;
//! pool.scope(|s| {
//!     for _ in 0..4 {
//!         // error[E0499]: cannot borrow `counter` as mutable more than once at a time
//!         s.submit(|| for _ in 0..100_000 { counter += 1 }).unwrap();
//!     }
//! });
//! ```
//!
//! (`examples/pitfall_shared_state.rs` shows the `Mutex` and atomic versions that do.)

use std::time::Duration;

/// One second of the guide is this long here.
pub const SCALE: Duration = Duration::from_millis(100);

/// `seconds` of the guide, scaled.
pub fn guide_seconds(seconds: f64) -> Duration {
    SCALE.mul_f64(seconds)
}

/// A local stand-in for httpbin.org on 127.0.0.1 — testkit's shared server, whose
/// `/delay/<seconds>` waits the guide's seconds scaled by [`SCALE`], with `/status/<code>` and
/// `/json`. Runs until the process ends.
pub type LocalServer = futurepool_testkit::http::HttpServer;

/// Starts the local server on a free port.
pub fn start_local_server() -> std::io::Result<LocalServer> {
    LocalServer::with_delay_unit(SCALE)
}

/// What a GET returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The HTTP status code.
    pub status: u16,
    /// The body's length in bytes.
    pub size: usize,
}

/// GETs `url` (http or https) with a timeout: the status and the body's size, or why not.
/// An HTTP error status is a page, not an error.
pub fn http_get(url: &str, timeout: Duration) -> Result<Page, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    Ok(Page {
        status,
        size: body.len(),
    })
}

/// The URLs given on the command line, or `default` paths on a freshly started local server.
pub fn urls_or_local(default: &[&str]) -> Vec<String> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("__"))
        .collect();
    if !args.is_empty() {
        return args;
    }
    let server = start_local_server().expect("cannot start the local HTTP server");
    // The server thread lives as long as the process.
    default.iter().map(|p| server.url(p)).collect()
}

/// The workspace README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
