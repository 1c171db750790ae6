//! One local HTTP/1.1 server for every test, example and benchmark that needs the network:
//! well-behaved endpoints (the guide's httpbin stand-ins) and hostile ones (a body that
//! trickles, a body that stalls after the headers, a redirect loop, 5xx, gzip, a check of the
//! `User-Agent`). It binds 127.0.0.1 on a free port, serves each connection on its own thread
//! with keep-alive, and lives as long as the process.
//!
//! Endpoints (`<n>` is a decimal number; a query string is ignored):
//!
//! | path | response |
//! |---|---|
//! | `/delay/<n>` | 200 after `n` × [`HttpServer::delay_unit`], body `{"delayed": n, "url": "/delay/n"}` |
//! | `/status/<code>` | that status, empty body |
//! | `/json` | 200, a small JSON document (`application/json`) |
//! | `/bytes/<n>` | 200, `n` bytes of [`pattern`] at once |
//! | `/chunked/<n>` | 200, `n` bytes of [`pattern`] in four chunks 20 ms apart, `Transfer-Encoding: chunked` |
//! | `/trickle/<n>` | 200, `Content-Length: n`, one byte every 200 ms |
//! | `/stall` | 200, `Content-Length: 100`, 10 bytes, then nothing until the client goes away |
//! | `/truncated` | 200, `Content-Length: 100`, 10 bytes, then the connection is closed |
//! | `/redirect/<n>` | `n` redirects (302, relative `Location`), then `/json` |
//! | `/redirect-loop` | 302 to itself, forever |
//! | `/flaky/<key>` | 500 the first time a key is asked for, 200 `fine` afterwards |
//! | `/hold/<ms>` | 200 after `ms` ms; [`HttpServer::max_in_flight`] records the most held at once |
//! | `/gzip` | 200, [`GZIP_TEXT`] gzip-compressed, `Content-Encoding: gzip` |
//! | `/ua` | 403 without a `User-Agent`, else 200 with the `User-Agent` as the body |
//! | `/headers` | 200, the request's headers, one `name: value` line each (names lower-cased) |
//! | `/files/<name>` | 200, `contents of <name>\n`, `text/plain` |
//! | anything else | 404 `not found` |

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// The text `/gzip` serves, compressed.
pub const GZIP_TEXT: &str = "gzip-compressed text, decoded by the client\n";

/// The body of `/json`.
pub const JSON_BODY: &str = "{\"slideshow\": {\"title\": \"Sample Slide Show\", \"slides\": 2}}\n";

/// The `n` bytes `/bytes/<n>` and `/chunked/<n>` serve: `abc…xyz` repeated, a newline every
/// 64 bytes, so saved bodies can be compared.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + (i % 26) as u8
            }
        })
        .collect()
}

/// The local server (see the module docs for its endpoints).
#[derive(Debug, Clone)]
pub struct HttpServer {
    /// `http://127.0.0.1:<port>`.
    base: String,
    /// What the server counts, shared with its connection threads.
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    /// `/delay/<n>` waits `n` of these.
    delay_unit: Duration,
    /// Keys of `/flaky/<key>` already asked for.
    flaky: Mutex<HashSet<String>>,
    /// `/hold/` requests being served now, and the most at once.
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Requests served, all paths.
    requests: AtomicUsize,
}

impl HttpServer {
    /// Starts a server whose `/delay/<n>` waits `n` milliseconds.
    pub fn start() -> io::Result<HttpServer> {
        HttpServer::with_delay_unit(Duration::from_millis(1))
    }

    /// Starts a server whose `/delay/<n>` waits `n` × `unit` (the guide's examples use its
    /// seconds scaled to 100 ms).
    pub fn with_delay_unit(unit: Duration) -> io::Result<HttpServer> {
        HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), unit)
    }

    /// Starts a server on `addr` (`examples/http_server.rs` serves on a fixed port).
    pub fn bind(addr: SocketAddr, unit: Duration) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(addr)?;
        let base = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(State {
            delay_unit: unit,
            ..State::default()
        });
        let shared = state.clone();
        thread::Builder::new()
            .name("testkit-http".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let state = shared.clone();
                    let _ = thread::Builder::new()
                        .name("testkit-http-conn".into())
                        .spawn(move || {
                            let _ = serve(stream, &state);
                        });
                }
            })?;
        Ok(HttpServer { base, state })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What `/delay/1` waits.
    pub fn delay_unit(&self) -> Duration {
        self.state.delay_unit
    }

    /// The most `/hold/` requests that were being served at once.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Requests served so far (every path).
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }
}

/// One parsed request.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    Ok(Some(Request { path, headers }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes a whole response in one `write` (no Nagle delay between head and body).
fn reply(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &str,
    body: &[u8],
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)
}

/// Serves one connection until the client closes it (keep-alive).
fn serve(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut stream = stream;
    // Not HTTP (say, a TLS ClientHello on this plain port): answer 400 in plain HTTP and
    // close, as real servers do.
    let first = reader.fill_buf()?.first().copied();
    if first.is_some_and(|b| !b.is_ascii_uppercase()) {
        reply(
            &mut stream,
            400,
            "text/plain",
            "Connection: close\r\n",
            b"not HTTP\n",
        )?;
        return Ok(());
    }
    while let Some(request) = read_request(&mut reader)? {
        state.requests.fetch_add(1, Ordering::SeqCst);
        if !respond(&mut stream, &mut reader, &request, state)? {
            return Ok(());
        }
    }
    Ok(())
}

/// Answers one request; `false` when the connection must not be reused.
fn respond(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    request: &Request,
    state: &State,
) -> io::Result<bool> {
    let path = request.path.as_str();
    let (head, arg) = match path[1.min(path.len())..].split_once('/') {
        Some((head, arg)) => (head, arg),
        None => (&path[1.min(path.len())..], ""),
    };
    let number = arg.parse::<u64>().ok();
    const TEXT: &str = "text/plain";
    match (head, number) {
        ("delay", Some(n)) => {
            thread::sleep(state.delay_unit * n as u32);
            let body = format!("{{\"delayed\": {n}, \"url\": \"{path}\"}}\n");
            reply(stream, 200, "application/json", "", body.as_bytes())?;
        }
        ("status", Some(code)) => reply(stream, code as u16, TEXT, "", b"")?,
        ("json", None) if arg.is_empty() => {
            reply(stream, 200, "application/json", "", JSON_BODY.as_bytes())?
        }
        ("bytes", Some(n)) => reply(
            stream,
            200,
            "application/octet-stream",
            "",
            &pattern(n as usize),
        )?,
        ("chunked", Some(n)) => {
            let body = pattern(n as usize);
            stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            )?;
            for chunk in body.chunks(body.len().div_ceil(4).max(1)) {
                let mut out = format!("{:x}\r\n", chunk.len()).into_bytes();
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
                stream.write_all(&out)?;
                thread::sleep(Duration::from_millis(20));
            }
            stream.write_all(b"0\r\n\r\n")?;
        }
        ("trickle", Some(n)) => {
            stream.write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Type: {TEXT}\r\nContent-Length: {n}\r\n\r\n")
                    .as_bytes(),
            )?;
            for _ in 0..n {
                thread::sleep(Duration::from_millis(200));
                stream.write_all(b"t")?;
            }
        }
        ("stall", None) | ("truncated", None) => {
            stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {TEXT}\r\nContent-Length: 100\r\n\r\n0123456789"
                )
                .as_bytes(),
            )?;
            if head == "stall" {
                // Nothing more until the client hangs up (a read returns 0 or fails).
                let _ = reader.read(&mut [0u8; 1]);
            }
            return Ok(false);
        }
        ("redirect", Some(n)) => {
            let next = if n <= 1 {
                "/json".to_string()
            } else {
                format!("/redirect/{}", n - 1)
            };
            reply(stream, 302, TEXT, &format!("Location: {next}\r\n"), b"")?;
        }
        ("redirect-loop", None) => reply(stream, 302, TEXT, "Location: /redirect-loop\r\n", b"")?,
        ("flaky", _) if !arg.is_empty() => {
            let first = state.flaky.lock().unwrap().insert(arg.to_string());
            reply(stream, if first { 500 } else { 200 }, TEXT, "", b"fine")?;
        }
        ("hold", Some(ms)) => {
            let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            state.max_in_flight.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(ms));
            state.in_flight.fetch_sub(1, Ordering::SeqCst);
            reply(stream, 200, TEXT, "", b"held")?;
        }
        ("gzip", None) => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(GZIP_TEXT.as_bytes())?;
            let body = encoder.finish()?;
            reply(stream, 200, TEXT, "Content-Encoding: gzip\r\n", &body)?;
        }
        ("ua", None) => match request.header("user-agent") {
            Some(ua) if !ua.is_empty() => reply(stream, 200, TEXT, "", ua.as_bytes())?,
            _ => reply(stream, 403, TEXT, "", b"a User-Agent is required\n")?,
        },
        ("headers", None) => {
            let body: String = request
                .headers
                .iter()
                .map(|(n, v)| format!("{n}: {v}\n"))
                .collect();
            reply(stream, 200, TEXT, "", body.as_bytes())?;
        }
        ("files", _) if !arg.is_empty() => {
            let body = format!("contents of {arg}\n");
            reply(stream, 200, TEXT, "", body.as_bytes())?;
        }
        _ => reply(stream, 404, TEXT, "", b"not found")?,
    }
    Ok(true)
}

/// A TCP port on 127.0.0.1 that never completes a connection: its listener has a backlog of
/// one and is never accepted from, and the backlog is filled, so further connection attempts
/// hang until the client's connect timeout (the kernel drops their SYNs).
#[derive(Debug)]
pub struct Blackhole {
    addr: SocketAddr,
    /// Kept open: the listener and the connections that fill its backlog.
    _listener: socket2::Socket,
    _filling: Vec<TcpStream>,
}

impl Blackhole {
    /// Binds the port and fills its backlog.
    pub fn start() -> io::Result<Blackhole> {
        use socket2::{Domain, Socket, Type};
        let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
        listener.listen(0)?;
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("not an IP socket"))?;
        let mut filling = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => filling.push(s),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    return Ok(Blackhole {
                        addr,
                        _listener: listener,
                        _filling: filling,
                    })
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("the backlog never filled"))
    }

    /// `http://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

/// `http://127.0.0.1:<port>/` for a port that refuses connections (bound, then released).
pub fn refused_url() -> io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    Ok(format!("http://{addr}/"))
}
