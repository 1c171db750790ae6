//! `pool bench --cluster`: the distributed path on one machine — a private `redis-server` and
//! two local `pool worker` agents, stopped and reaped when the bench ends (also on an error).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let exe = std::env::current_exe().context("cannot find the pool executable")?;
        let mut children = Vec::new();
        let url = server.url();
        for _ in 0..agents {
            let child = Command::new(&exe)
                .args(["worker", "--broker", &url, "--queue", QUEUE, "-j"])
                .arg(slots_each.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn();
            match child {
                Ok(child) => children.push(child),
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
    }
}
