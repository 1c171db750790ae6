//! Decoding what anyone with write access to a stream can put there: a corpus of hostile
//! entries (each once crashed, wedged or could have crashed a decoder) and property tests over
//! arbitrary bytes and over valid messages mutated. Every decode must end, without a panic and
//! within a small stack, in a message or an error. `cargo xtask proptest --cases N` runs the
//! properties longer; failures found are kept in `proptest-regressions/` and replayed first.

use std::thread;

use proptest::prelude::*;
use serde_bytes::ByteBuf;

use crate::wire::{
    from_bytes, started_seqs, to_bytes, Done, ItemOutcome, Payload, RemoteOutcome, ReplyMsg,
    TaskMsg,
};

/// The listener's and the claimer's stack is 2 MiB; decode on a smaller one still.
const SMALL_STACK: usize = 256 << 10;

/// Every decoder a peer's bytes reach, run on a thread with a small stack; `true` if each one
/// ended (with a value or an error) rather than panicking.
fn decode_all(bytes: Vec<u8>) -> bool {
    thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let _ = from_bytes::<ReplyMsg>(&bytes);
            let _ = from_bytes::<TaskMsg>(&bytes);
            let _ = from_bytes::<Vec<ByteBuf>>(&bytes);
            let _ = started_seqs(&bytes);
        })
        .unwrap()
        .join()
        .is_ok()
}

/// A reply entry whose one outcome is a chunk nested `depth` deep (the recursive wire type of
/// old decoded it recursively: 200 000 deep overflowed a 2 MiB stack).
fn nested_chunks(depth: usize) -> Vec<u8> {
    // agent "", one Done { seq 1, attempt 1, outcome … }
    let mut bytes = vec![0x00, 0x01, 0x01, 0x01];
    for _ in 0..depth {
        bytes.extend([0x07, 0x01]); // Chunk, one item
    }
    bytes.push(0x03); // TimedOut
    bytes
}

#[test]
fn a_deeply_nested_chunk_is_an_error_not_a_stack_overflow() {
    let bytes = nested_chunks(200_000);
    let decoded = thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || from_bytes::<ReplyMsg>(&bytes).map(|_| ()))
        .unwrap()
        .join()
        .expect("decoding ended without a panic");
    assert!(decoded.is_err());
    // One level is a chunk of one item: still fine.
    let one: ReplyMsg = from_bytes(&nested_chunks(1)).unwrap();
    assert_eq!(
        one.done[0].outcome,
        RemoteOutcome::Chunk(vec![ItemOutcome::TimedOut])
    );
}

/// Hostile entries, each a case a decoder must refuse or bound.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    let mut cases = vec![
        ("empty", vec![]),
        ("nested chunks", nested_chunks(200_000)),
        ("a chunk inside a chunk", nested_chunks(2)),
        ("an unknown outcome", vec![0x00, 0x01, 0x01, 0x01, 0x08]),
        ("invalid UTF-8 agent", vec![0x02, 0xc3, 0x28, 0x00]),
        ("an over-long varint", vec![0x80; 64]),
    ];
    let mut huge_count = vec![0x00];
    huge_count.extend(huge);
    cases.push(("2^64 outcomes announced", huge_count));
    let mut huge_string = vec![];
    huge_string.extend(huge);
    huge_string.extend(b"abc");
    cases.push(("a 2^64-byte agent name announced", huge_string));
    let mut many = vec![0x00, 0xff, 0xff, 0xff, 0x7f];
    many.extend(std::iter::repeat_n([0x01, 0x01, 0x03], 1000).flatten());
    cases.push(("many outcomes announced, few there", many));
    let valid = to_bytes(&sample_reply());
    for cut in [1, valid.len() / 2, valid.len() - 1] {
        cases.push(("a truncated reply", valid[..cut].to_vec()));
    }
    cases.push((
        "a started list with garbage",
        b"1,2,,x,99999999999999999999999".to_vec(),
    ));
    cases
}

fn sample_reply() -> ReplyMsg {
    ReplyMsg {
        agent: "agent-1".into(),
        done: vec![
            Done {
                seq: 7,
                attempt: 1,
                outcome: RemoteOutcome::Returned(Payload::Inline(vec![1, 2, 3])),
            },
            Done {
                seq: 8,
                attempt: 2,
                outcome: RemoteOutcome::Chunk(vec![
                    ItemOutcome::Returned(Payload::Stored("fp:{q}:blob:c:8:result2".into())),
                    ItemOutcome::Panicked {
                        message: "boom".into(),
                        location: Some("src/lib.rs:1:1".into()),
                    },
                    ItemOutcome::Cancelled,
                ]),
            },
        ],
    }
}

#[test]
fn the_corpus_of_hostile_entries_decodes_to_errors() {
    for (name, bytes) in corpus() {
        let refused = bytes.clone();
        assert!(decode_all(bytes), "{name}: a decoder panicked");
        if name != "a started list with garbage" {
            assert!(
                from_bytes::<ReplyMsg>(&refused).is_err(),
                "{name}: decoded as a reply"
            );
        }
    }
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Payload::Inline),
        ".{0,20}".prop_map(Payload::Stored),
    ]
}

fn item() -> impl Strategy<Value = ItemOutcome> {
    prop_oneof![
        payload().prop_map(ItemOutcome::Returned),
        (".{0,20}", proptest::option::of(".{0,10}"))
            .prop_map(|(message, location)| ItemOutcome::Panicked { message, location }),
        ".{0,20}".prop_map(ItemOutcome::WorkerLost),
        Just(ItemOutcome::TimedOut),
        Just(ItemOutcome::Cancelled),
        ".{0,20}".prop_map(ItemOutcome::Codec),
        ".{0,20}".prop_map(ItemOutcome::Broken),
    ]
}

fn outcome() -> impl Strategy<Value = RemoteOutcome> {
    prop_oneof![
        item().prop_map(RemoteOutcome::from),
        proptest::collection::vec(item(), 0..6).prop_map(RemoteOutcome::Chunk),
    ]
}

fn reply() -> impl Strategy<Value = ReplyMsg> {
    (
        ".{0,12}",
        proptest::collection::vec(
            (any::<u64>(), any::<u32>(), outcome()).prop_map(|(seq, attempt, outcome)| Done {
                seq,
                attempt,
                outcome,
            }),
            0..5,
        ),
    )
        .prop_map(|(agent, done)| ReplyMsg { agent, done })
}

fn task() -> impl Strategy<Value = TaskMsg> {
    (
        (".{0,12}", ".{0,12}", any::<u64>(), ".{0,12}", ".{0,12}"),
        (any::<u64>(), payload(), any::<Option<u64>>(), any::<u32>()),
        (any::<u64>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (task, client, seq, function, signature),
                (fingerprint, arg, timeout_ms, max_attempts),
                (reply_ttl_ms, delivery, chunk),
            )| TaskMsg {
                task,
                client,
                seq,
                function,
                signature,
                fingerprint,
                arg,
                timeout_ms,
                max_attempts,
                reply_ttl_ms,
                delivery,
                chunk,
            },
        )
}

/// A way to damage an encoded message.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let n = bytes.len();
        match *m {
            Mutation::Flip(i, x) if n > 0 => bytes[i % n] ^= x,
            Mutation::Insert(i, b) => bytes.insert(i % (n + 1), b),
            Mutation::Remove(i) if n > 0 => {
                bytes.remove(i % n);
            }
            Mutation::Truncate(i) => bytes.truncate(i % (n + 1)),
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: futurepool_testkit::proptest_cases(256),
        ..ProptestConfig::default()
    })]

    #[test]
    fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(decode_all(bytes));
    }

    #[test]
    fn valid_replies_round_trip_and_survive_mutation(
        msg in reply(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bytes = to_bytes(&msg);
        let back: ReplyMsg = from_bytes(&bytes).unwrap();
        prop_assert_eq!(back.agent, msg.agent);
        prop_assert_eq!(back.done.len(), msg.done.len());
        for (a, b) in back.done.iter().zip(&msg.done) {
            prop_assert_eq!((a.seq, a.attempt, &a.outcome), (b.seq, b.attempt, &b.outcome));
        }
        prop_assert!(decode_all(mutate(bytes, &mutations)));
    }

    #[test]
    fn valid_tasks_survive_mutation(
        msg in task(),
        mutations in proptest::collection::vec(mutation(), 1..4),
    ) {
        let bytes = to_bytes(&msg);
        prop_assert_eq!(from_bytes::<TaskMsg>(&bytes).unwrap().task, msg.task);
        prop_assert!(decode_all(mutate(bytes, &mutations)));
    }
}
