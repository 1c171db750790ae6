//! The wire protocol between the parent and its worker processes: the only types in
//! futurepool that derive `Serialize`.
//!
//! Arguments and results travel as bincode bytes inside these messages, so the protocol itself
//! is not generic: the worker decodes an argument with the types of the registered function.

use std::fmt;
use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};

use ipc_channel::ipc::{IpcReceiver, IpcSender, IpcSharedMemory};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

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
    Init { task: Option<(String, Bytes)> },
    /// Run one task.
    Run { id: u64, task: String, arg: Bytes },
    /// Run one task on each argument of a chunk (`map` with a chunk size); `None` marks an
    /// argument that did not serialize in the parent.
    RunChunk {
        id: u64,
        task: String,
        args: Vec<Option<Bytes>>,
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
    Returned(Bytes),
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

/// Encoded bytes (an argument or a return value) on the wire. Small ones travel inline in the
/// message; from [`SHARED_FROM`] bytes on they travel in a shared-memory region (a memfd on
/// Linux) whose descriptor rides along with the message, so a large payload is copied once into
/// the region and mapped by the receiver instead of being streamed through the socket in
/// fragments and reassembled.
#[doc(hidden)]
#[derive(Serialize, Deserialize)]
pub struct Bytes(Repr);

#[derive(Serialize, Deserialize)]
enum Repr {
    Inline(ByteBuf),
    Shared(IpcSharedMemory),
}

/// The size from which [`Bytes`] go through shared memory. Each region costs a memfd, an mmap on
/// both sides and a descriptor in flight, so ordinary small arguments stay inline.
pub(crate) const SHARED_FROM: usize = 1 << 20;

impl Bytes {
    /// `bytes`, in shared memory if they are large.
    pub(crate) fn new(bytes: Vec<u8>) -> Bytes {
        if bytes.len() >= SHARED_FROM {
            // ipc-channel asserts instead of returning an error when it cannot make the
            // region (out of descriptors or memory): the bytes then travel inline.
            if let Ok(region) =
                panic::catch_unwind(AssertUnwindSafe(|| IpcSharedMemory::from_bytes(&bytes)))
            {
                return Bytes(Repr::Shared(region));
            }
        }
        Bytes(Repr::Inline(ByteBuf::from(bytes)))
    }

    /// `value`, bincode-encoded, in shared memory if the encoding is large.
    pub(crate) fn encode<T: Serialize + ?Sized>(
        value: &T,
    ) -> Result<Bytes, crate::codec::CodecError> {
        Ok(Bytes::new(crate::codec::encode(value)?))
    }

    /// Whether the bytes travel in a shared-memory region.
    #[cfg(test)]
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.0, Repr::Shared(_))
    }
}

impl Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline(bytes) => bytes,
            Repr::Shared(region) => region,
        }
    }
}

/// The length only: a reply printed in an error message must not dump a payload.
impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.0 {
            Repr::Inline(_) => "inline",
            Repr::Shared(_) => "shared",
        };
        write!(f, "<{} bytes, {how}>", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `bytes` through a real ipc-channel and back out as bytes.
    fn through_channel(bytes: Vec<u8>) -> Bytes {
        let (tx, rx) = ipc_channel::ipc::channel::<Outcome>().unwrap();
        tx.send(Outcome::Returned(Bytes::new(bytes))).unwrap();
        match rx.recv().unwrap() {
            Outcome::Returned(bytes) => bytes,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn small_bytes_travel_inline_large_ones_in_shared_memory() {
        let small: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
        let got = through_channel(small.clone());
        assert!(!got.is_shared());
        assert_eq!(&*got, &small[..]);

        let large: Vec<u8> = (0..SHARED_FROM as u32 + 7)
            .map(|i| (i % 251) as u8)
            .collect();
        let got = through_channel(large.clone());
        assert!(got.is_shared());
        assert_eq!(&*got, &large[..]);

        assert!(through_channel(Vec::new()).is_empty());
    }

    #[test]
    fn encoded_values_decode_back_inline_or_shared() {
        let small = vec![3u32; 10];
        let encoded = Bytes::encode(&small).unwrap();
        assert!(!encoded.is_shared());
        assert_eq!(bincode::deserialize::<Vec<u32>>(&encoded).unwrap(), small);

        let large: Vec<u32> = (0..SHARED_FROM as u32).collect();
        let encoded = Bytes::encode(&large).unwrap();
        assert!(encoded.is_shared());
        assert_eq!(
            encoded.len() as u64,
            bincode::serialized_size(&large).unwrap()
        );
        let back = through_channel(encoded.to_vec());
        assert_eq!(bincode::deserialize::<Vec<u32>>(&back).unwrap(), large);
    }

    #[test]
    fn debug_shows_the_length_not_the_payload() {
        let shown = format!("{:?}", Bytes::new(vec![7; SHARED_FROM]));
        assert_eq!(shown, format!("<{SHARED_FROM} bytes, shared>"));
        assert_eq!(format!("{:?}", Bytes::new(vec![1, 2])), "<2 bytes, inline>");
    }
}
