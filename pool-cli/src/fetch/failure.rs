//! Why one URL failed, classified by walking the error's `source()` chain and looking at the
//! types and kinds found there (reqwest's, hyper's, rustls', `io::ErrorKind`, our own DNS
//! error) — never by matching message text.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use super::client::DnsFailure;

/// What kind of failure: the first word of the per-URL error line and `"kind"` in `--json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not a URL we can fetch (malformed, or a scheme other than http/https).
    BadUrl,
    /// The host name did not resolve.
    Dns,
    /// Nothing listens on the port.
    Refused,
    /// No connection within `--connect-timeout`.
    ConnectTimeout,
    /// Any other failure to connect.
    Connect,
    /// The TLS handshake failed (certificate, protocol, or no TLS at all on the port).
    Tls,
    /// Connect, headers and body did not finish within `--timeout`.
    Timeout,
    /// More than `--max-redirects` redirects.
    Redirects,
    /// The body ended early or could not be read.
    Body,
    /// `--fail` and a status of 400 or more.
    Http,
    /// The body could not be saved.
    Save,
    /// Anything else about the request.
    Request,
}

impl Kind {
    /// The name printed for this kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::BadUrl => "bad URL",
            Kind::Dns => "DNS",
            Kind::Refused => "connection refused",
            Kind::ConnectTimeout => "connect timeout",
            Kind::Connect => "connect",
            Kind::Tls => "TLS",
            Kind::Timeout => "timeout",
            Kind::Redirects => "too many redirects",
            Kind::Body => "body",
            Kind::Http => "HTTP",
            Kind::Save => "save",
            Kind::Request => "request",
        }
    }

    /// Worth another attempt with `--retries`.
    pub fn retryable(self) -> bool {
        !matches!(
            self,
            Kind::BadUrl | Kind::Redirects | Kind::Save | Kind::Tls | Kind::Http
        )
    }
}

/// One URL's failure: its kind and a human explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: Kind,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

/// The limits a failure is explained against.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeout: Duration,
    pub connect_timeout: Option<Duration>,
    pub max_redirects: usize,
}

impl Failure {
    pub fn new(kind: Kind, detail: impl Into<String>) -> Failure {
        Failure {
            kind,
            detail: detail.into(),
        }
    }

    /// The deadline passed.
    pub fn timeout(limits: &Limits) -> Failure {
        Failure::new(
            Kind::Timeout,
            format!(
                "no complete response within {} (--timeout)",
                seconds(limits.timeout)
            ),
        )
    }

    /// Classifies a failed request or body read (`https`: the URL's scheme).
    pub fn classify(error: &(dyn StdError + 'static), limits: &Limits, https: bool) -> Failure {
        let chain = chain(error);
        let innermost = chain.last().map_or_else(String::new, |e| e.to_string());
        let reqwest_connect = chain
            .iter()
            .filter_map(|e| e.downcast_ref::<reqwest::Error>())
            .any(reqwest::Error::is_connect);
        for e in &chain {
            if let Some(dns) = e.downcast_ref::<DnsFailure>() {
                return Failure::new(Kind::Dns, dns.to_string());
            }
        }
        for e in &chain {
            if let Some(tls) = e.downcast_ref::<rustls::Error>() {
                let hint = match tls {
                    rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
                        " (the server did not answer in TLS: is this a plain-http port?)"
                    }
                    _ => "",
                };
                return Failure::new(Kind::Tls, format!("handshake failed: {tls}{hint}"));
            }
        }
        let timed_out = chain.iter().any(|e| {
            e.downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_timeout)
                || e.downcast_ref::<io::Error>()
                    .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut)
        });
        if timed_out {
            return match limits.connect_timeout {
                Some(limit) if reqwest_connect && limit < limits.timeout => Failure::new(
                    Kind::ConnectTimeout,
                    format!(
                        "no connection within {} (--connect-timeout)",
                        seconds(limit)
                    ),
                ),
                _ => Failure::timeout(limits),
            };
        }
        if chain
            .iter()
            .filter_map(|e| e.downcast_ref::<reqwest::Error>())
            .any(reqwest::Error::is_redirect)
        {
            return Failure::new(
                Kind::Redirects,
                format!("more than {} (--max-redirects)", limits.max_redirects),
            );
        }
        let io_kind = chain
            .iter()
            .filter_map(|e| e.downcast_ref::<io::Error>())
            .map(io::Error::kind)
            .find(|k| *k != io::ErrorKind::Other);
        if io_kind == Some(io::ErrorKind::ConnectionRefused) {
            return Failure::new(Kind::Refused, innermost);
        }
        if https && reqwest_connect && io_kind == Some(io::ErrorKind::UnexpectedEof) {
            return Failure::new(
                Kind::Tls,
                format!("handshake failed: the server closed the connection ({innermost})"),
            );
        }
        if reqwest_connect {
            return Failure::new(Kind::Connect, innermost);
        }
        let body = chain.iter().any(|e| {
            e.downcast_ref::<reqwest::Error>()
                .is_some_and(|r| r.is_body() || r.is_decode())
                || e.downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_incomplete_message)
        });
        if body {
            return Failure::new(Kind::Body, innermost);
        }
        Failure::new(Kind::Request, innermost)
    }
}

/// The error and its causes, outermost first. `io::Error::source` skips the error it wraps,
/// so a wrapped error is visited through `get_ref`.
fn chain<'a>(error: &'a (dyn StdError + 'static)) -> Vec<&'a (dyn StdError + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        out.push(e);
        next = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => e.source(),
        };
        if out.len() > 64 {
            break;
        }
    }
    out
}

/// `3 s`, `0.5 s`.
pub fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            timeout: Duration::from_secs(3),
            connect_timeout: None,
            max_redirects: 10,
        }
    }

    #[test]
    fn a_wrapped_io_error_is_walked_into() {
        let inner = io::Error::new(io::ErrorKind::ConnectionRefused, "refused");
        let outer = io::Error::other(inner);
        assert_eq!(
            Failure::classify(&outer, &limits(), false).kind,
            Kind::Refused
        );
        let timed_out = io::Error::other(io::Error::from(io::ErrorKind::TimedOut));
        assert_eq!(
            Failure::classify(&timed_out, &limits(), false).kind,
            Kind::Timeout
        );
    }

    #[test]
    fn dns_and_tls_are_found_by_type() {
        let dns = DnsFailure {
            host: "nowhere.invalid".into(),
            source: io::Error::other("lookup failed"),
        };
        let wrapped = io::Error::other(dns);
        let f = Failure::classify(&wrapped, &limits(), false);
        assert_eq!(f.kind, Kind::Dns);
        assert!(f.detail.contains("nowhere.invalid"), "{f}");
        let tls = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
        );
        let f = Failure::classify(&tls, &limits(), true);
        assert_eq!(f.kind, Kind::Tls);
        assert!(f.detail.contains("plain-http"), "{f}");
    }
}
