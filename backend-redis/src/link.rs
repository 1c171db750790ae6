//! One connection to Redis that comes back after a network error or a Redis restart: each
//! thread of a client or agent owns one `Link` (a blocking connection is not shared).

use std::thread;
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisError, RedisResult};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a reply may take beyond a command's own blocking time.
pub(crate) const READ_MARGIN: Duration = Duration::from_secs(10);

/// A connection, reopened on demand after a transient failure.
pub(crate) struct Link {
    client: Client,
    conn: Option<Connection>,
    /// How long a connection attempt may take.
    connect: Duration,
    /// How long a reply may take (the longest `BLOCK` this link's commands use, plus a margin).
    read: Duration,
    /// How long a write may take.
    write: Duration,
    /// While set, no connection attempt, write or reply may last past it.
    cap: Option<Instant>,
}

impl Link {
    /// A link that connects lazily; `block` is the longest blocking command it will run.
    pub(crate) fn new(client: Client, block: Duration) -> Link {
        Link {
            client,
            conn: None,
            connect: CONNECT_TIMEOUT,
            read: block.saturating_add(READ_MARGIN),
            write: READ_MARGIN,
            cap: None,
        }
    }

    /// A link whose every connection attempt, write and reply takes at most `timeout` (for
    /// work that must not wait long on a frozen server).
    pub(crate) fn bounded(client: Client, timeout: Duration) -> Link {
        Link {
            client,
            conn: None,
            connect: timeout.min(CONNECT_TIMEOUT),
            read: timeout,
            write: timeout,
            cap: None,
        }
    }

    /// The connect, read and write timeouts, within the cap if one is set.
    fn timeouts(&self) -> (Duration, Duration, Duration) {
        match self.cap {
            None => (self.connect, self.read, self.write),
            Some(cap) => {
                let left = cap
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1));
                (
                    self.connect.min(left),
                    self.read.min(left),
                    self.write.min(left),
                )
            }
        }
    }

    /// From now until [`uncap`](Self::uncap), no connection attempt, write or reply lasts past
    /// `until` (for a caller with a deadline of its own; not for blocking reads).
    pub(crate) fn cap(&mut self, until: Instant) {
        self.cap = Some(until);
        self.apply_timeouts();
    }

    /// Back to the link's own timeouts.
    pub(crate) fn uncap(&mut self) {
        self.cap = None;
        self.apply_timeouts();
    }

    fn apply_timeouts(&mut self) {
        let (_, read, write) = self.timeouts();
        if let Some(conn) = &self.conn {
            if conn.set_read_timeout(Some(read)).is_err()
                || conn.set_write_timeout(Some(write)).is_err()
            {
                self.conn = None;
            }
        }
    }

    /// The connection, opening it if needed.
    pub(crate) fn conn(&mut self) -> RedisResult<&mut Connection> {
        if self.conn.is_none() {
            let (connect, read, write) = self.timeouts();
            let conn = self.client.get_connection_with_timeout(connect)?;
            conn.set_read_timeout(Some(read))?;
            conn.set_write_timeout(Some(write))?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("opened above"))
    }

    /// Runs `op` once; a transient failure drops the connection so the next call reconnects.
    pub(crate) fn run<T>(
        &mut self,
        op: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let result = self.conn().and_then(op);
        if let Err(e) = &result {
            if is_transient(e) {
                self.conn = None;
            }
        }
        result
    }

    /// Runs `op` until it succeeds, a non-transient error occurs, `keep_going` says stop, or
    /// `until` passes, backing off between attempts (50 ms doubling to 1 s).
    pub(crate) fn run_retrying<T>(
        &mut self,
        until: Option<Instant>,
        keep_going: impl Fn() -> bool,
        mut op: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> RedisResult<T> {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.run(&mut op) {
                Err(e) if is_transient(&e) => {
                    let late = until.is_some_and(|u| Instant::now() + pause > u);
                    if late || !keep_going() {
                        return Err(e);
                    }
                    log::warn!("futurepool-redis: {e}; retrying in {pause:?}");
                    thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }
}

/// A client for `url`; with `root_certificate` (PEM), a `rediss://` server's certificate must
/// chain to it instead of to the bundled web PKI roots.
#[cfg(feature = "tls")]
pub(crate) fn open(url: &str, root_certificate: Option<&[u8]>) -> RedisResult<Client> {
    if url.starts_with("rediss:") {
        // rustls needs a process-wide crypto provider; `Err` means one is installed already
        // (by this program or another library), which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match root_certificate {
        None => Client::open(url),
        Some(pem) => Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.to_vec()),
            },
        ),
    }
}

/// A client for `url`, which must not ask for TLS: this build has no `tls` feature.
#[cfg(not(feature = "tls"))]
pub(crate) fn open(url: &str, root_certificate: Option<&[u8]>) -> RedisResult<Client> {
    if url.starts_with("rediss:") || root_certificate.is_some() {
        return Err(RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "TLS (rediss://, a root certificate) needs futurepool-redis's `tls` feature, which \
             this build turned off",
        )));
    }
    Client::open(url)
}

/// Errors worth a reconnect and a retry: the network, a restarting or loading server, a
/// failover in progress.
pub(crate) fn is_transient(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || matches!(
            e.code(),
            Some("LOADING" | "MASTERDOWN" | "TRYAGAIN" | "READONLY" | "CLUSTERDOWN")
        )
}

/// A Redis error for a message: with the fix for a missing ACL right, and for a server that
/// never answered what was tried (the socket's read timeout says only "Resource temporarily
/// unavailable").
pub(crate) fn describe(e: &RedisError) -> String {
    if e.code() == Some("NOPERM") {
        return format!(
            "{e} (the Redis user lacks a right futurepool needs: see the README's \"Across \
             machines\" section for the ACL to give clients and agents)"
        );
    }
    let silent = e.is_timeout()
        || (e.is_io_error() && e.to_string().contains("Resource temporarily unavailable"));
    if silent {
        return format!(
            "the server accepted the connection but did not answer in time ({e}): is it frozen \
             or overloaded, and does the URL's scheme match the port (rediss:// needs a TLS \
             port, redis:// a plaintext one)?"
        );
    }
    if e.is_connection_refusal() {
        return format!("nothing accepts connections there ({e}): is the server running?");
    }
    e.to_string()
}

/// `true` if the error says the consumer group (or its stream) does not exist: Redis lost its
/// data (a restart without persistence) or nothing created the group yet.
pub(crate) fn is_no_group(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

/// A Redis URL with its password masked, for messages, logs and `Debug`: the one redaction
/// every URL shown goes through. Masks the password of the user info (`redis://u:pw@h`) and
/// the value of a `pass` or `password` query parameter (`redis+unix:///s?user=u&pass=pw`, the
/// form `LocalServer::url_as` makes), whatever its case.
pub(crate) fn shown(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match (head.find("://"), head.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &head[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &head[..scheme + 3], &head[at..]),
                None => head.to_string(),
            }
        }
        _ => head.to_string(),
    };
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((query, fragment)) => (query, Some(fragment)),
            None => (query, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password") =>
                {
                    format!("{key}=***")
                }
                _ => param.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
    }
    out
}

/// A fresh random id (128 bits as hex): not a secret, only unique.
pub(crate) fn random_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    for _ in 0..2 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked() {
        assert_eq!(shown("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(shown("redis://h:1"), "redis://h:1");
        assert_eq!(shown("rediss://:pw@h"), "rediss://:***@h");
        assert_eq!(
            shown("redis+unix:///tmp/r.sock?user=app&pass=secret"),
            "redis+unix:///tmp/r.sock?user=app&pass=***"
        );
        assert_eq!(
            shown("redis+unix:///s?pass=secret&db=2&PASSWORD=x#frag"),
            "redis+unix:///s?pass=***&db=2&PASSWORD=***#frag"
        );
        assert_eq!(
            shown("redis://u:a@b@h/?password=c"),
            "redis://u:***@h/?password=***"
        );
        assert_eq!(shown("redis://h/?db=1"), "redis://h/?db=1");
    }

    #[test]
    fn ids_are_unique() {
        let a = random_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, random_id());
    }
}
