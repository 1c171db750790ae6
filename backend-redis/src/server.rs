//! [`LocalServer`]: a private `redis-server` for development, tests and `pool bench
//! --cluster` — its own temporary directory (mode 0700), a Unix socket and no TCP port, no
//! persistence unless asked; ready once it answers PING; killed and reaped on drop.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// The environment variable naming the server program to run instead of `redis-server` (for
/// example Valkey's `valkey-server`, which takes the same arguments).
pub const SERVER_ENV: &str = "FUTUREPOOL_REDIS_SERVER";

/// How long a starting server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A `redis-server` child process owned by this program (another server program, such as
/// Valkey's `valkey-server`, if [`SERVER_ENV`] names one).
pub struct LocalServer {
    child: Option<Child>,
    dir: PathBuf,
    aof: bool,
    /// More `redis-server` arguments (a TLS port, …).
    extra: Vec<String>,
}

impl LocalServer {
    /// Starts a server without persistence. An error of kind `NotFound` says how to install
    /// `redis-server`.
    pub fn start() -> io::Result<LocalServer> {
        LocalServer::start_with(false)
    }

    /// Starts a server; with `aof`, every write is fsynced to an append-only file first
    /// (`appendfsync always`), so a SIGKILL and a [`restart`](Self::restart) lose nothing.
    pub fn start_with(aof: bool) -> io::Result<LocalServer> {
        LocalServer::start_with_args(aof, &[])
    }

    /// Starts a server with more `redis-server` arguments (for example a TLS port and its
    /// certificate files). It still listens on its private Unix socket, which the readiness
    /// check uses.
    pub fn start_with_args(aof: bool, extra: &[&str]) -> io::Result<LocalServer> {
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "futurepool-redis-{}-{n}-{}",
            std::process::id(),
            &crate::link::random_id()[..8]
        ));
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        let mut server = LocalServer {
            child: None,
            dir,
            aof,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn()?;
        Ok(server)
    }

    /// The private directory (the socket, the log, the AOF); removed on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The server's process id, while it runs (to freeze it with SIGSTOP in a test, …).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The URL of the default user (`redis+unix://…`).
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The URL of an ACL user.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "redis+unix://{}?user={user}&pass={password}",
            self.socket().display()
        )
    }

    fn spawn(&mut self) -> io::Result<()> {
        let program = std::env::var_os(SERVER_ENV).unwrap_or_else(|| "redis-server".into());
        let mut cmd = Command::new(&program);
        cmd.arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(self.socket())
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(&self.dir)
            .arg("--save")
            .arg("")
            .arg("--logfile")
            .arg(self.dir.join("redis.log"))
            .args(["--appendfsync", "always", "--appendonly"])
            .arg(if self.aof { "yes" } else { "no" })
            .args(&self.extra);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                if e.kind() == io::ErrorKind::NotFound {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "{} is not installed (Debian/Ubuntu: sudo apt-get install \
                             redis-server; macOS: brew install redis; or name another server, \
                             such as Valkey's valkey-server, in {SERVER_ENV})",
                            program.to_string_lossy()
                        ),
                    )
                } else {
                    e
                }
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(io::Error::other(format!(
                        "redis-server exited at start ({status}); see {}",
                        self.dir.join("redis.log").display()
                    )));
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "redis-server did not answer PING within 20 s",
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server answers PING on its socket.
    fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reply = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok()
            && s.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// SIGKILLs and reaps the server (its data stays, for [`restart`](Self::restart)).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same socket and directory (with AOF,
    /// with its data).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let _ = std::fs::remove_file(self.socket());
        self.spawn()
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl fmt::Debug for LocalServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalServer")
            .field("url", &self.url())
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("aof", &self.aof)
            .finish()
    }
}
