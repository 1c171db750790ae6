//! The worker side: what [`init`](crate::init) turns the process into when its parent started
//! it as a worker.

use std::cell::RefCell;
use std::env;
use std::process;

use ipc_channel::ipc::{self, IpcSender};

use crate::registry;
use crate::wire::{Bytes, Hello, Outcome, Reply, Request};

/// The environment variable that carries `<server name>\n<token>` to a worker.
pub(crate) const WORKER_ENV: &str = "FUTUREPOOL_WORKER";

/// Arguments a worker is started with. `init()` runs before the program looks at its
/// arguments; under the libtest harness they select the test made by
/// [`test_worker!`](crate::test_worker), which calls `init()`.
pub(crate) const WORKER_ARGS: &[&str] = &[
    "__futurepool_worker",
    "--exact",
    "--nocapture",
    "--test-threads=1",
    "-q",
];

/// Exit code of a worker that could not start (bad token, no parent).
pub(crate) const EXIT_BOOT_FAILED: i32 = 97;

thread_local! {
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The location of the last panic on this thread, recorded by the worker's panic hook.
pub(crate) fn take_panic_location() -> Option<String> {
    PANIC_LOCATION.with(|l| l.borrow_mut().take())
}

/// Called by `init()`: returns if this process is not a worker; otherwise serves its parent and
/// exits.
pub(crate) fn maybe_run() {
    let Some(spec) = env::var_os(WORKER_ENV) else {
        return;
    };
    // Not inherited by anything this worker starts.
    env::remove_var(WORKER_ENV);
    let spec = spec.to_string_lossy().into_owned();
    let Some((server, token)) = spec.split_once('\n') else {
        eprintln!("futurepool worker: {WORKER_ENV} is set but malformed; refusing to start");
        process::exit(EXIT_BOOT_FAILED);
    };
    if token.len() < 32 {
        eprintln!("futurepool worker: no valid parent token; refusing to start");
        process::exit(EXIT_BOOT_FAILED);
    }
    match serve(server, token) {
        Ok(()) => process::exit(0),
        Err(e) => {
            eprintln!("futurepool worker: {e}");
            process::exit(EXIT_BOOT_FAILED);
        }
    }
}

fn serve(server: &str, token: &str) -> Result<(), String> {
    let hello = IpcSender::<Hello>::connect(server.to_string())
        .map_err(|e| format!("not started by a futurepool parent (cannot reach it: {e})"))?;
    let (requests_tx, requests) = ipc::channel::<Request>().map_err(|e| e.to_string())?;
    let (replies, replies_rx) = ipc::channel::<Reply>().map_err(|e| e.to_string())?;
    hello
        .send(Hello::Worker {
            token: token.to_string(),
            pid: process::id(),
            requests: requests_tx,
            replies: replies_rx,
        })
        .map_err(|e| e.to_string())?;
    drop(hello);
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        PANIC_LOCATION.with(|l| *l.borrow_mut() = location);
    }));
    loop {
        // The parent going away (recv error) ends the worker.
        let Ok(request) = requests.recv() else {
            return Ok(());
        };
        let reply = match request {
            Request::Init { task: None } => {
                Reply::Initialized(Outcome::Returned(Bytes::new(Vec::new())))
            }
            Request::Init {
                task: Some((name, arg)),
            } => Reply::Initialized(registry::run(&name, &arg)),
            Request::Run { id, task, arg } => Reply::Done {
                id,
                outcome: registry::run(&task, &arg),
            },
            Request::RunChunk { id, task, args } => Reply::ChunkDone {
                id,
                outcomes: args
                    .iter()
                    .map(|arg| match arg {
                        Some(arg) => registry::run(&task, arg),
                        None => Outcome::BadArgument("did not serialize".into()),
                    })
                    .collect(),
            },
            Request::Exit => return Ok(()),
        };
        if replies.send(reply).is_err() {
            return Ok(());
        }
    }
}
