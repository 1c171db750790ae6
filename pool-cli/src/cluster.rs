//! `pool bench --cluster`: the distributed path on one machine — a private `redis-server` and
//! two local `pool worker` agents, stopped and reaped when the bench ends (also on an error),
//! and killed, with the server's directory removed, when SIGTERM, SIGINT or SIGHUP ends the
//! bench (`timeout(1)`, systemd, a closed terminal).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use anyhow::{Context, Result};
use futurepool_redis::test_support::LocalServer;
use futurepool_redis::RedisPool;

use crate::UsageError;

/// The queue the bench's agents serve.
const QUEUE: &str = "pool-bench";

/// A private Redis, its agents and a client pool.
pub struct Cluster {
    /// Dropped first: the client lets go before the agents and the server stop.
    pub pool: RedisPool,
    agents: Vec<Child>,
    /// Stops the agents and the server if a signal ends the bench.
    on_signal: Option<OnSignal>,
    _server: LocalServer,
    pub agent_count: usize,
    pub slots_each: usize,
}

impl Cluster {
    /// Starts a server and `agents` agents of `slots_each` slots. A missing `redis-server` is
    /// a [`UsageError`] (exit 2) saying how to install it.
    pub fn start(agents: usize, slots_each: usize) -> Result<Cluster> {
        let server = match LocalServer::start() {
            Ok(server) => server,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UsageError(format!("--cluster: {e}")).into())
            }
            Err(e) => return Err(e).context("--cluster: cannot start redis-server"),
        };
        let on_signal = OnSignal::install(&server)?;
        let exe = std::env::current_exe().context("cannot find the pool executable")?;
        let mut children = Vec::new();
        let url = server.url();
        for _ in 0..agents {
            // Under the signal thread's lock: a signal now waits until the agent is listed.
            let mut pids = on_signal.pids.lock().unwrap_or_else(|p| p.into_inner());
            let child = Command::new(&exe)
                .args(["worker", "--broker", &url, "--queue", QUEUE, "-j"])
                .arg(slots_each.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn();
            match child {
                Ok(child) => {
                    pids.push(child.id() as libc::pid_t);
                    children.push(child);
                }
                Err(e) => {
                    stop(&mut children);
                    return Err(e).context("cannot start an agent");
                }
            }
        }
        // A deadline, so no future (and no drop of the pool) can wait forever on an agent that
        // died.
        let pool = match RedisPool::builder(&url)
            .queue(QUEUE)
            .deadline(Duration::from_secs(600))
            .connect()
        {
            Ok(pool) => pool,
            Err(e) => {
                stop(&mut children);
                return Err(e.into());
            }
        };
        let cluster = Cluster {
            pool,
            agents: children,
            on_signal: Some(on_signal),
            _server: server,
            agent_count: agents,
            slots_each,
        };
        // Warm up: both agents up and their worker processes started, as the process pool's
        // are by its own first run.
        let warm = 4 * agents * slots_each;
        let futures: Vec<_> = (0..warm)
            .map(|_| cluster.pool.submit(crate::bench::io_task, 20))
            .collect::<Result<_, _>>()?;
        for f in futures {
            f.result_timeout(Duration::from_secs(60))
                .map_err(|e| anyhow::anyhow!("--cluster: an agent did not answer: {e}"))?;
        }
        Ok(cluster)
    }
}

/// A thread that waits for SIGTERM, SIGINT or SIGHUP and then kills the agents and the
/// server, removes the server's directory and exits with 128 + the signal (the signal alone
/// would have ended `pool` and left them running). Once the cluster is stopped, a signal has
/// its default effect again.
struct OnSignal {
    stopped: Arc<AtomicBool>,
    /// The server's and the agents' pids (the agents are added as they start).
    pids: Arc<Mutex<Vec<libc::pid_t>>>,
}

impl OnSignal {
    fn install(server: &LocalServer) -> Result<OnSignal> {
        let mut signals =
            Signals::new([SIGTERM, SIGINT, SIGHUP]).context("installing signal handlers")?;
        let pids = Arc::new(Mutex::new(
            server
                .pid()
                .map(|p| p as libc::pid_t)
                .into_iter()
                .collect::<Vec<_>>(),
        ));
        let dir: PathBuf = server.dir().to_path_buf();
        let stopped = Arc::new(AtomicBool::new(false));
        let done = stopped.clone();
        let listed = pids.clone();
        // Not joined: it lives until `pool` exits, blocked in the signal iterator.
        thread::Builder::new()
            .name("pool-cluster-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if done.load(Ordering::Acquire) {
                        let _ = signal_hook::low_level::emulate_default_handler(signal);
                        continue;
                    }
                    let pids = listed.lock().unwrap_or_else(|p| p.into_inner());
                    for &pid in pids.iter() {
                        // SAFETY: kill(2) has no memory-safety preconditions; the pids are
                        // this process's own unreaped children.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    for &pid in pids.iter() {
                        // SAFETY: as above; a null status pointer is allowed.
                        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                    }
                    let _ = std::fs::remove_dir_all(&dir);
                    eprintln!(
                        "pool: bench --cluster ended by signal {signal}; its Redis and agents \
                         are stopped"
                    );
                    std::process::exit(128 + signal);
                }
            })
            .context("starting the signal thread")?;
        Ok(OnSignal { stopped, pids })
    }
}

fn stop(children: &mut Vec<Child>) {
    for child in children.iter_mut() {
        let _ = child.kill();
    }
    for mut child in children.drain(..) {
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Nothing queued is left for agents about to stop (after an error mid-bench).
        self.pool.shutdown(
            futurepool_redis::Shutdown::new()
                .wait(false)
                .cancel_futures(true),
        );
        stop(&mut self.agents);
        if let Some(on_signal) = self.on_signal.take() {
            on_signal.stopped.store(true, Ordering::Release);
        }
    }
}
