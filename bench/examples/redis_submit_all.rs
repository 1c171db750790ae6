//! Submit-all through futurepool-redis in a loop, for `perf`: a private `redis-server`, two
//! local agents (2 slots each), `redis_submit_all [tasks] [rounds]`; with `STATS=1` it prints
//! the server's `INFO` at the end (its CPU time, calls per command).
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futurepool_redis::test_support::LocalServer;
use futurepool_redis::{AgentOptions, RedisPool};

fn noop(_: ()) {}
futurepool_procs::register!(noop);

struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn main() {
    futurepool_procs::init();
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--agent") {
        let url = args.next().expect("--agent URL");
        let err = futurepool_redis::serve(
            &url,
            AgentOptions::new()
                .queue("bench")
                .lease(Duration::from_secs(1))
                .slots(2),
        );
        panic!("agent: {err:?}");
    }
    let n: usize = first.and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let server = LocalServer::start().expect("redis-server");
    let url = server.url();
    let spawn = || {
        Command::new(std::env::current_exe().unwrap())
            .args(["--agent", &url])
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    };
    let _agents = Agents(vec![spawn(), spawn()]);
    let pool = RedisPool::builder(&url).queue("bench").connect().unwrap();
    for f in (0..200)
        .map(|_| pool.submit(noop, ()).unwrap())
        .collect::<Vec<_>>()
    {
        f.result().unwrap();
    }
    for _ in 0..rounds {
        let t = Instant::now();
        let futures: Vec<_> = (0..n).map(|_| pool.submit(noop, ()).unwrap()).collect();
        for f in &futures {
            f.result().unwrap();
        }
        let per = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        println!("{per:.2} µs/task ({:.0}/s)", 1e6 / per);
    }
    if std::env::var_os("STATS").is_some() {
        let socket = server.dir().join("redis.sock");
        let _ = Command::new("redis-cli")
            .arg("-s")
            .arg(&socket)
            .args(["info", "all"])
            .status();
    }
}
