//! The wire protocol between the parent and its worker processes: the only types in
//! futurepool that derive `Serialize`.
//!
//! Arguments and results travel as bincode bytes inside these messages, so the protocol itself
//! is not generic: the worker decodes an argument with the types of the registered function.

use ipc_channel::ipc::{IpcReceiver, IpcSender};
use serde::{Deserialize, Serialize};

/// The first message, sent by the worker to the parent's one-shot server.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Hello {
    /// A worker started by us: the one-time token it was given, its pid, and the two channels.
    Worker {
        token: String,
        pid: u32,
        requests: IpcSender<Request>,
        replies: IpcReceiver<Reply>,
    },
    /// Sent by the parent itself to unblock its own `accept` after the child died before
    /// connecting (`IpcOneShotServer::accept` would otherwise block forever, ipc-channel #261).
    Abort,
}

/// Parent → worker.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Request {
    /// Run the pool's initializer (`task` with `arg`), then answer `Initialized`.
    Init { task: Option<(String, Vec<u8>)> },
    /// Run one task.
    Run { id: u64, task: String, arg: Vec<u8> },
    /// Run one task on each argument of a chunk (`map` with a chunk size); `None` marks an
    /// argument that did not serialize in the parent.
    RunChunk {
        id: u64,
        task: String,
        args: Vec<Option<Vec<u8>>>,
    },
    /// Exit cleanly.
    Exit,
}

/// Worker → parent.
#[derive(Serialize, Deserialize, Debug)]
pub(crate) enum Reply {
    /// The initializer ran (`Returned` of an empty value when there is none).
    Initialized(Outcome),
    Done {
        id: u64,
        outcome: Outcome,
    },
    ChunkDone {
        id: u64,
        outcomes: Vec<Outcome>,
    },
}

/// How one call went, as the worker saw it.
#[derive(Serialize, Deserialize, Debug)]
#[doc(hidden)]
pub enum Outcome {
    /// The function's return value, bincode-encoded.
    Returned(Vec<u8>),
    /// The function panicked.
    Panicked {
        message: String,
        location: Option<String>,
    },
    /// No function of that name is registered in the worker.
    UnknownTask(String),
    /// The argument could not be decoded as the function's parameter type.
    BadArgument(String),
    /// The return value could not be encoded.
    BadResult(String),
}
