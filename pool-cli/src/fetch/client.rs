//! The HTTP client every request shares: reqwest (blocking, rustls, gzip), the redirect limit,
//! the connect timeout, the default headers (`User-Agent: pool/<version>` unless `-A`, and every
//! `-H`), and our own DNS resolver, so that a failed lookup is an error of a type we own
//! ([`DnsFailure`]) rather than a message to guess from.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};

/// The `User-Agent` sent unless `-A` names another.
pub const DEFAULT_USER_AGENT: &str = concat!("pool/", env!("CARGO_PKG_VERSION"));

/// A host name that did not resolve.
#[derive(Debug)]
pub struct DnsFailure {
    pub host: String,
    pub source: io::Error,
}

impl fmt::Display for DnsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot resolve `{}`: {}", self.host, self.source)
    }
}

impl std::error::Error for DnsFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The system resolver (`getaddrinfo`, on tokio's blocking threads as reqwest's own), failing
/// with [`DnsFailure`].
#[derive(Debug)]
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let lookup =
                tokio::task::spawn_blocking(move || match (host.as_str(), 0).to_socket_addrs() {
                    Ok(addrs) => Ok(addrs.collect::<Vec<SocketAddr>>()),
                    Err(source) => Err(DnsFailure { host, source }),
                });
            let addrs = lookup.await??;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A `-H 'Name: value'` argument, checked.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}` is not a header (expected `Name: value`)"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("`{}` is not a valid header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of header `{name}` is not valid"))?;
    Ok((name, value))
}

/// What the client is built from.
#[derive(Debug)]
pub struct Settings<'a> {
    pub user_agent: &'a str,
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub connect_timeout: Option<Duration>,
    pub max_redirects: usize,
    pub idle_per_host: usize,
}

/// Builds the shared client; a bad `-A` value is the caller's input error.
pub fn build(settings: &Settings<'_>) -> Result<reqwest::blocking::Client, String> {
    let mut headers = HeaderMap::new();
    let agent = HeaderValue::from_str(settings.user_agent)
        .map_err(|_| format!("`{}` is not a valid User-Agent", settings.user_agent))?;
    headers.insert(USER_AGENT, agent);
    // `-H` replaces a default of the same name (`-H 'User-Agent: x'`, as curl does).
    for (name, _) in settings.headers {
        headers.remove(name);
    }
    for (name, value) in settings.headers {
        headers.append(name.clone(), value.clone());
    }
    let mut builder = reqwest::blocking::Client::builder()
        .default_headers(headers)
        .dns_resolver(Arc::new(SystemResolver))
        .redirect(reqwest::redirect::Policy::limited(settings.max_redirects))
        .pool_max_idle_per_host(settings.idle_per_host)
        // The per-request deadline (`RequestBuilder::timeout`) covers connect, headers and the
        // whole body; the client-wide per-read timeout is off.
        .timeout(None::<Duration>);
    if let Some(connect) = settings.connect_timeout {
        builder = builder.connect_timeout(connect);
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}
