//! Helpers for the guide's examples (`cargo run -p futurepool-guide --example <lesson>`): a small
//! local HTTP server with the guide's endpoints, so every example runs offline, and a blocking
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

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// One second of the guide is this long here.
pub const SCALE: Duration = Duration::from_millis(100);

/// `seconds` of the guide, scaled.
pub fn guide_seconds(seconds: f64) -> Duration {
    SCALE.mul_f64(seconds)
}

/// A local stand-in for httpbin.org on 127.0.0.1: `/delay/<seconds>` (scaled), `/status/<code>`,
/// `/json`; anything else is 404. Runs until the process ends.
#[derive(Debug)]
pub struct LocalServer {
    base: String,
}

impl LocalServer {
    /// Starts the server on a free port.
    pub fn start() -> std::io::Result<LocalServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        thread::Builder::new()
            .name("guide-http".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    thread::spawn(move || {
                        let _ = handle(stream);
                    });
                }
            })?;
        Ok(LocalServer { base })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let (status, body) = if let Some(secs) = path.strip_prefix("/delay/") {
        let secs: f64 = secs.parse().unwrap_or(0.0);
        thread::sleep(guide_seconds(secs.min(10.0)));
        (
            200,
            format!("{{\"delayed\": {secs}, \"url\": \"{path}\"}}\n"),
        )
    } else if let Some(code) = path.strip_prefix("/status/") {
        (code.parse().unwrap_or(400), String::new())
    } else if path == "/json" {
        (
            200,
            "{\"slideshow\": {\"title\": \"Sample Slide Show\", \"slides\": 2}}\n".to_string(),
        )
    } else {
        (404, "not found\n".to_string())
    };
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
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
    let server = LocalServer::start().expect("cannot start the local HTTP server");
    let urls = default.iter().map(|p| server.url(p)).collect();
    // The server thread lives as long as the process.
    std::mem::forget(server);
    urls
}
