//! Test helpers: a private `redis-server` per test (its own temp directory, a Unix socket, no
//! TCP port, no persistence unless asked), stopped and reaped on drop; agents that are this
//! test binary re-run in agent mode, standing in for machines.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

static SERVERS: AtomicUsize = AtomicUsize::new(0);

/// A `redis-server` owned by one test.
pub struct Server {
    child: Option<Child>,
    dir: PathBuf,
    aof: bool,
}

impl Server {
    /// A server without persistence.
    pub fn start() -> Server {
        Server::with_aof(false)
    }

    /// A server; with `aof`, every write is fsynced to an append-only file, so a SIGKILL and a
    /// restart lose nothing.
    pub fn with_aof(aof: bool) -> Server {
        let n = SERVERS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fp-redis-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut server = Server {
            child: None,
            dir,
            aof,
        };
        server.spawn();
        server
    }

    /// A path in the server's private directory (removed with it), for files tasks write.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("redis.sock")
    }

    /// The URL of the default user.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// The URL of an ACL user.
    pub fn url_as(&self, user: &str, pass: &str) -> String {
        format!(
            "redis+unix://{}?user={user}&pass={pass}",
            self.socket().display()
        )
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new("redis-server");
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
            .arg(self.dir.join("redis.log"));
        if self.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server must be installed (Debian: apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut c) = self.conn_result() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn conn_result(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }

    /// A direct connection, for inspecting keys.
    pub fn conn(&self) -> redis::Connection {
        self.conn_result().unwrap()
    }

    /// Every key matching `pattern`, sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut self.conn())
            .unwrap();
        keys.sort();
        keys
    }

    /// SIGKILL and reap the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same socket and directory (with AOF, with its data).
    pub fn restart(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.socket());
        self.spawn();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Agent processes (this test binary in agent mode), killed and reaped on drop.
pub struct Agents {
    pub children: Vec<Child>,
}

/// What the `__agent` test reads to become an agent.
pub const AGENT_ENV: &str = "FP_TEST_AGENT";

impl Agents {
    /// `n` agents on `url`/`queue`, each with `slots` slots and the given lease.
    pub fn start(n: usize, url: &str, queue: &str, slots: usize, lease: Duration) -> Agents {
        let mut agents = Agents {
            children: Vec::new(),
        };
        for _ in 0..n {
            agents.add(url, queue, slots, lease);
        }
        agents
    }

    /// One more agent.
    pub fn add(&mut self, url: &str, queue: &str, slots: usize, lease: Duration) -> u32 {
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "__agent",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(
                AGENT_ENV,
                format!("{url}\n{queue}\n{slots}\n{}", lease.as_millis()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// Reaps the agents that have exited; how many did.
    pub fn reap_exited(&mut self) -> usize {
        let before = self.children.len();
        self.children
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_))));
        before - self.children.len()
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The body of the `__agent` test: serve if started as an agent, else nothing.
pub fn agent_main() {
    let Ok(spec) = std::env::var(AGENT_ENV) else {
        return;
    };
    let parts: Vec<&str> = spec.split('\n').collect();
    let options = futurepool_redis::AgentOptions::new()
        .queue(parts[1])
        .slots(parts[2].parse().unwrap())
        .lease(Duration::from_millis(parts[3].parse().unwrap()));
    let err = futurepool_redis::serve(parts[0], options);
    eprintln!("agent: {err:?}");
    std::process::exit(3);
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; whether it held.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
