//! `futurepool-bench --codec`: the candidates for the process pool's codec side by side, on a
//! small message and on 256 MiB of bytes (as `Vec<u8>` and as `serde_bytes::ByteBuf`), encode
//! plus decode, median of 7 interleaved runs each. bincode 1 is what the pool used until it was
//! declared unmaintained (RUSTSEC-2025-0141, which covers bincode 2 as well); postcard is what
//! it uses now.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

#[derive(Serialize, Deserialize, PartialEq, Debug, Clone)]
struct Small {
    id: u64,
    name: String,
    values: Vec<u32>,
    ok: bool,
}

type Enc<T> = fn(&T) -> Vec<u8>;
type Dec<T> = fn(&[u8]) -> T;

fn codecs<T: Serialize + serde::de::DeserializeOwned>() -> Vec<(&'static str, Enc<T>, Dec<T>)> {
    vec![
        (
            "bincode 1",
            |v| bincode::serialize(v).unwrap(),
            |b| bincode::deserialize(b).unwrap(),
        ),
        (
            "bincode 2 (serde)",
            |v| bincode2::serde::encode_to_vec(v, bincode2::config::standard()).unwrap(),
            |b| {
                bincode2::serde::decode_from_slice(b, bincode2::config::standard())
                    .unwrap()
                    .0
            },
        ),
        (
            "postcard",
            |v| postcard::to_allocvec(v).unwrap(),
            |b| postcard::from_bytes(b).unwrap(),
        ),
    ]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Encode + decode `value` `n` times with each codec, interleaved; median seconds per round.
fn compare<T>(what: &str, value: &T, n: usize, unit: &str, scale: f64)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq,
{
    let codecs = codecs::<T>();
    let mut times = vec![Vec::new(); codecs.len()];
    let mut sizes = vec![0; codecs.len()];
    for _ in 0..7 {
        for (i, (_, enc, dec)) in codecs.iter().enumerate() {
            let start = Instant::now();
            for _ in 0..n {
                let bytes = enc(value);
                sizes[i] = bytes.len();
                let back = dec(&bytes);
                assert!(back == *value);
            }
            times[i].push(start.elapsed().as_secs_f64() / n as f64);
        }
    }
    println!("{what} (encode + decode, median of 7 interleaved runs):");
    let base = median(times[0].clone());
    for (i, (name, _, _)) in codecs.iter().enumerate() {
        let m = median(times[i].clone());
        println!(
            "  {name:<20} {:>10.3} {unit}  {:>10} bytes  {:.2}× bincode 1's time",
            m * scale,
            sizes[i],
            m / base
        );
    }
}

pub fn run() {
    let small = Small {
        id: 12345,
        name: "a task argument".into(),
        values: (0..16).collect(),
        ok: true,
    };
    compare("small struct", &small, 200_000, "ns", 1e9);
    compare("u64", &42u64, 1_000_000, "ns", 1e9);
    let bytes: Vec<u8> = (0..256usize << 20).map(|i| i as u8).collect();
    compare("256 MiB Vec<u8>", &bytes, 1, "s", 1.0);
    let buf = ByteBuf::from(bytes);
    compare("256 MiB serde_bytes::ByteBuf", &buf, 1, "s", 1.0);
}
