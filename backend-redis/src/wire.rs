//! The messages on the task and reply streams: the only types of this crate that derive
//! `Serialize`. A task entry carries one message, postcard-encoded, in one field; a reply entry
//! one message with the outcomes of several tasks, or the list of tasks an agent started.
//!
//! The task's own argument and result are bytes already encoded with the process pool's codec
//! (`futurepool_procs::__private::codec`): the agent passes them through without knowing their
//! types, and only the client decodes a result.

use serde::{Deserialize, Serialize};

/// Payloads from this size on are stored in their own key (with an expiry) instead of in the
/// stream entry: streams are not blob stores.
pub(crate) const BLOB_FROM: usize = 1 << 20;

/// The longest expiry this crate asks Redis for (about 34 years): Redis refuses a `PX` whose
/// end does not fit its clock, so a longer TTL (`Duration::MAX`) is this.
pub(crate) const MAX_TTL_MS: u64 = 1 << 40;

/// A TTL in whole milliseconds as Redis takes it: at least 1, at most [`MAX_TTL_MS`].
pub(crate) fn ttl_ms(ttl: std::time::Duration) -> u64 {
    ttl.as_millis().clamp(1, u128::from(MAX_TTL_MS)) as u64
}

/// The stream field a message travels in.
pub(crate) const FIELD: &str = "m";

/// An encoded argument or result: in the message, or in a key of its own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Payload {
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The key holding the bytes.
    Stored(String),
}

/// A task on the task stream.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct TaskMsg {
    /// Unique task id: `<client id>:<seq>`.
    pub task: String,
    /// The submitting client (its reply stream's name).
    pub client: String,
    /// The client's number for this task.
    pub seq: u64,
    /// The registered function's name.
    pub function: String,
    /// The client's signature of the function, for the error message of a mismatch.
    pub signature: String,
    /// The client's `Signature::fingerprint` of the function.
    pub fingerprint: u64,
    pub arg: Payload,
    /// How long the task may run once started (the agent kills it past that).
    pub timeout_ms: Option<u64>,
    /// Deliveries after which a task whose agents keep vanishing fails.
    pub max_attempts: u32,
    /// The reply stream's expiry, refreshed by every reply.
    pub reply_ttl_ms: u64,
    /// Prefix the argument with the task id and attempt (`Delivery<A>`).
    pub delivery: bool,
    /// A chunk of `map`: the argument is a list of encoded arguments (`Vec<ByteBuf>`), run one
    /// after another; the outcome is a [`RemoteOutcome::Chunk`].
    pub chunk: bool,
}

/// The stream field of a reply entry that lists tasks an agent started: their `seq`s in
/// decimal, comma-separated (written by the start script, one entry per batch and client).
pub(crate) const STARTED_FIELD: &str = "s";

/// A reply entry's message ([`FIELD`]): the outcomes of tasks of one client that one agent
/// reported together.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct ReplyMsg {
    /// The agent that sent it.
    pub agent: String,
    pub done: Vec<Done>,
}

/// A task ended.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub(crate) struct Done {
    /// The client's number for the task.
    pub seq: u64,
    pub attempt: u32,
    pub outcome: RemoteOutcome,
}

/// The `seq`s of a [`STARTED_FIELD`] value; `None` if it is malformed.
pub(crate) fn started_seqs(value: &[u8]) -> Option<Vec<u64>> {
    std::str::from_utf8(value)
        .ok()?
        .split(',')
        .map(|s| s.parse().ok())
        .collect()
}

/// How a task ended, as its agent saw it: one item's outcome, or a chunk's, item by item.
///
/// Not recursive: a chunk holds [`ItemOutcome`]s, which cannot hold a chunk, so decoding a
/// reply written by anyone is bounded in depth (a recursive type let a 400 KB entry nested
/// 200 000 deep overflow the listener's stack). The variants before `Chunk` are
/// `ItemOutcome`'s, in the same order, so both encode alike.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) enum RemoteOutcome {
    /// The function's encoded return value (for a fallible function, the encoded `Result`).
    Returned(Payload),
    Panicked {
        message: String,
        location: Option<String>,
    },
    WorkerLost(String),
    TimedOut,
    Cancelled,
    Codec(String),
    /// The agent could not run the task (unknown function, signature mismatch, broken pool).
    Broken(String),
    /// Each item's outcome, for a chunk.
    Chunk(Vec<ItemOutcome>),
}

/// How one item ended (a task's, or one of a chunk's items).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ItemOutcome {
    Returned(Payload),
    Panicked {
        message: String,
        location: Option<String>,
    },
    WorkerLost(String),
    TimedOut,
    Cancelled,
    Codec(String),
    Broken(String),
}

impl From<ItemOutcome> for RemoteOutcome {
    fn from(item: ItemOutcome) -> RemoteOutcome {
        match item {
            ItemOutcome::Returned(p) => RemoteOutcome::Returned(p),
            ItemOutcome::Panicked { message, location } => {
                RemoteOutcome::Panicked { message, location }
            }
            ItemOutcome::WorkerLost(why) => RemoteOutcome::WorkerLost(why),
            ItemOutcome::TimedOut => RemoteOutcome::TimedOut,
            ItemOutcome::Cancelled => RemoteOutcome::Cancelled,
            ItemOutcome::Codec(why) => RemoteOutcome::Codec(why),
            ItemOutcome::Broken(why) => RemoteOutcome::Broken(why),
        }
    }
}

impl RemoteOutcome {
    /// One item's outcome, or a chunk's items.
    pub(crate) fn split(self) -> Result<ItemOutcome, Vec<ItemOutcome>> {
        Ok(match self {
            RemoteOutcome::Returned(p) => ItemOutcome::Returned(p),
            RemoteOutcome::Panicked { message, location } => {
                ItemOutcome::Panicked { message, location }
            }
            RemoteOutcome::WorkerLost(why) => ItemOutcome::WorkerLost(why),
            RemoteOutcome::TimedOut => ItemOutcome::TimedOut,
            RemoteOutcome::Cancelled => ItemOutcome::Cancelled,
            RemoteOutcome::Codec(why) => ItemOutcome::Codec(why),
            RemoteOutcome::Broken(why) => ItemOutcome::Broken(why),
            RemoteOutcome::Chunk(items) => return Err(items),
        })
    }
}

/// `value` as bytes, with the process pool's codec (postcard; infallible for these types).
pub(crate) fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    futurepool_procs::__private::codec::encode(value).expect("wire messages always serialize")
}

/// A message back from bytes; `Err` describes the bytes. Anyone who can write a stream can
/// put bytes there: the codec (postcard) checks a length field against the bytes left before
/// taking them, so a hostile length is an error, never an allocation.
pub(crate) fn from_bytes<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    futurepool_procs::__private::codec::decode(bytes)
        .map_err(|e| format!("malformed message ({} bytes): {e}", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msg = ReplyMsg {
            agent: "a".into(),
            done: vec![Done {
                seq: 9,
                attempt: 2,
                outcome: RemoteOutcome::Returned(Payload::Inline(vec![1, 2, 3])),
            }],
        };
        let back: ReplyMsg = from_bytes(&to_bytes(&msg)).unwrap();
        assert_eq!(back.agent, "a");
        assert_eq!(back.done.len(), 1);
        assert_eq!((back.done[0].seq, back.done[0].attempt), (9, 2));
        assert!(matches!(
            &back.done[0].outcome,
            RemoteOutcome::Returned(Payload::Inline(b)) if b == &[1, 2, 3]
        ));
        assert!(from_bytes::<ReplyMsg>(&[0xff; 3]).is_err());
        assert_eq!(started_seqs(b"7"), Some(vec![7]));
        assert_eq!(started_seqs(b"7,18,3"), Some(vec![7, 18, 3]));
        assert_eq!(started_seqs(b"7,,3"), None);
        assert_eq!(started_seqs(b"x"), None);
        let hostile = [
            1, b'a', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert!(from_bytes::<ReplyMsg>(&hostile).is_err());
        // The same for a task's argument bytes.
        let mut task = vec![0x05, b'c', b':', b'1', b'1', 0x01, b'c', 1];
        task.extend([0xff; 9]);
        task.push(0x01);
        assert!(from_bytes::<TaskMsg>(&task).is_err());
    }
}

/// The argument of a function submitted with
/// [`RedisPool::submit_delivery`](crate::RedisPool::submit_delivery): the client's argument
/// plus what the agent knows about this run, so side effects can be made idempotent.
///
/// On the wire the agent prefixes the client's encoded argument with the encoded id and
/// attempt: the codec encodes a struct as its fields one after another.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Delivery<A> {
    /// The task's id, the same on every attempt.
    pub task_id: String,
    /// 1 on the first delivery; more when the task was reclaimed from a vanished agent.
    pub attempt: u32,
    /// The client's argument.
    pub arg: A,
}

#[cfg(test)]
mod delivery_tests {
    use super::*;
    use futurepool_procs::__private::codec;

    #[test]
    fn a_delivery_encodes_as_id_and_attempt_then_the_argument() {
        let d = Delivery {
            task_id: "c:1".to_string(),
            attempt: 2,
            arg: (7u64, "x".to_string()),
        };
        let mut parts = codec::encode(&(&d.task_id, d.attempt)).unwrap();
        parts.extend(codec::encode(&d.arg).unwrap());
        assert_eq!(codec::encode(&d).unwrap(), parts);
        assert_eq!(codec::decode::<Delivery<(u64, String)>>(&parts).unwrap(), d);
    }
}
