//! `pool worker --broker URL [-j N]`: an agent for `pool run --broker` — this executable in
//! futurepool-redis's agent mode, running each job it claims in a worker process of its own
//! process pool (so a job's crash, hang or kill is that job's result).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use futurepool_redis::{AgentError, AgentOptions};

use crate::util::parse_seconds;
use crate::UsageError;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Redis to serve: `redis://[user:pass@]host[:port]`, `rediss://…` (TLS),
    /// `redis+unix:///path`.
    #[arg(long, value_name = "URL")]
    broker: String,
    /// Jobs at once. Default: the number of cores.
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// The queue to serve (the one `pool run --broker --queue` sends to).
    #[arg(long, default_value = crate::run::DEFAULT_QUEUE)]
    queue: String,
    /// Seconds this agent may be silent before its jobs go to other agents.
    #[arg(long, allow_hyphen_values = true, default_value = "10", value_parser = parse_seconds)]
    lease: Duration,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    if args.jobs == Some(0) {
        return Err(UsageError("-j must be at least 1".into()).into());
    }
    let mut options = AgentOptions::new().queue(&args.queue).lease(args.lease);
    if let Some(n) = args.jobs {
        options = options.slots(n);
    }
    match futurepool_redis::serve(&args.broker, options) {
        Ok(never) => match never {},
        Err(e @ (AgentError::Url(_) | AgentError::Option(_))) => {
            Err(UsageError(e.to_string()).into())
        }
        Err(e) => Err(e.into()),
    }
}
