//! Test helpers: a private `redis-server` per test ([`LocalServer`]: its own temp directory, a
//! Unix socket, no TCP port, no persistence unless asked, stopped and reaped on drop); agents
//! that are this test binary re-run in agent mode, standing in for machines.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use futurepool_redis::test_support::LocalServer;

/// A `redis-server` owned by one test, with helpers to look inside it.
pub struct Server(pub LocalServer);

impl Server {
    /// A server without persistence, or `None` (the test reported as skipped) where no
    /// server program is installed.
    pub fn start() -> Option<Server> {
        started(LocalServer::start())
    }

    /// A server whose every write is fsynced to an append-only file, or `None` (skipped) where
    /// no server program is installed.
    pub fn with_aof(aof: bool) -> Option<Server> {
        started(LocalServer::start_with(aof))
    }

    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn url_as(&self, user: &str, pass: &str) -> String {
        self.0.url_as(user, pass)
    }

    /// A path in the server's private directory (removed with it), for files tasks write.
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.0.dir().join(name)
    }

    /// A direct connection, for inspecting keys.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
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

    /// SIGKILL and start again on the same socket and directory.
    pub fn restart(&mut self) {
        self.0.restart().unwrap();
    }
}

/// A server frozen with SIGSTOP: thawed (SIGCONT) on drop, even when the test fails, and by
/// its own timer after `limit` whatever happens (a hung test must not leave it stopped).
pub struct Frozen {
    pid: libc::pid_t,
    thawed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Frozen {
    pub fn new(server: &Server, limit: Duration) -> Frozen {
        let pid = server.0.pid().expect("the server runs") as libc::pid_t;
        let thawed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child's.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        let flag = thawed.clone();
        thread::spawn(move || {
            let until = Instant::now() + limit;
            while Instant::now() < until && !flag.load(std::sync::atomic::Ordering::Acquire) {
                thread::sleep(Duration::from_millis(50));
            }
            if !flag.swap(true, std::sync::atomic::Ordering::AcqRel) {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGCONT) };
            }
        });
        Frozen { pid, thawed }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if !self.thawed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(self.pid, libc::SIGCONT) };
        }
    }
}

/// The started server; `None` after reporting the test skipped if the server program is not
/// installed (a failure instead under `FUTUREPOOL_REQUIRE_TOOLS=redis-server`); any other
/// error fails the test.
fn started(server: std::io::Result<LocalServer>) -> Option<Server> {
    match server {
        Ok(server) => Some(Server(server)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            futurepool_testkit::tools::skip("redis-server", &e.to_string());
            None
        }
        Err(e) => panic!("cannot start the test's server: {e}"),
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
        self.add_with_ca(url, queue, slots, lease, None)
    }

    /// One more agent, trusting this CA certificate file for `rediss://`.
    pub fn add_with_ca(
        &mut self,
        url: &str,
        queue: &str,
        slots: usize,
        lease: Duration,
        ca: Option<&std::path::Path>,
    ) -> u32 {
        let ca = ca.map(|p| p.display().to_string()).unwrap_or_default();
        let mut command = Command::new(std::env::current_exe().unwrap());
        // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent. The agent
        // dies with the thread that started it (the test's body), so a test that hangs and is
        // ended by its watchdog leaves no agent behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .args([
                "--exact",
                "__agent",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(
                AGENT_ENV,
                format!("{url}\n{queue}\n{slots}\n{}\n{ca}", lease.as_millis()),
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
    let mut options = futurepool_redis::AgentOptions::new()
        .queue(parts[1])
        .slots(parts[2].parse().unwrap())
        .lease(Duration::from_millis(parts[3].parse().unwrap()));
    if let Some(ca) = parts.get(4).filter(|p| !p.is_empty()) {
        options = options.tls_root_certificate(std::fs::read(ca).unwrap());
    }
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
