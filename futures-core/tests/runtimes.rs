//! The async side on real runtimes, tokio and smol: `.await` by value without `Clone`, a
//! done-callback's lent handle, a shared future, and `as_completed_stream` (feature `stream`).

#![cfg(feature = "stream")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::watchdog;
use futurepool_core::{as_completed_stream, Future, FutureError};
use futures_core::Stream;

const LIMIT: Duration = Duration::from_secs(60);

/// Neither `Clone` nor `Sync`-needing: the value moves out of the future.
#[derive(Debug, PartialEq)]
struct NotClone(u64);

/// Runs `work` once on a tokio runtime and once on smol.
fn on_both_runtimes<F, Fut>(work: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    tokio.block_on(work());
    smol::block_on(work());
}

/// Completes `promise`'s future on another thread after a short while.
fn later<T: Send + 'static>(
    promise: futurepool_core::Promise<T>,
    value: T,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(10));
        promise.set_result(value).expect("first completion");
    })
}

#[test]
fn await_moves_the_value_out_without_clone() {
    watchdog(LIMIT, || {
        on_both_runtimes(|| async {
            let (future, promise) = Future::<NotClone>::pending();
            let worker = later(promise, NotClone(7));
            assert_eq!(future.await, Ok(NotClone(7)));
            worker.join().unwrap();
            // Already done before the await.
            assert_eq!(
                Future::<NotClone>::ready(NotClone(1)).await,
                Ok(NotClone(1))
            );
        });
    });
}

#[test]
fn await_waits_for_a_callbacks_lent_handle() {
    watchdog(LIMIT, || {
        on_both_runtimes(|| async {
            for _ in 0..20 {
                let (future, promise) = Future::<NotClone>::pending();
                let ran = Arc::new(AtomicUsize::new(0));
                let r = ran.clone();
                future.add_done_callback(move |f| {
                    // Hold the lent handle a while: the await must wait, not report "shared".
                    thread::sleep(Duration::from_millis(2));
                    assert_eq!(f.result(), Ok(&NotClone(3)));
                    r.fetch_add(1, Ordering::SeqCst);
                });
                let worker = thread::spawn(move || promise.set_result(NotClone(3)).ok());
                assert_eq!(future.await, Ok(NotClone(3)));
                assert_eq!(ran.load(Ordering::SeqCst), 1, "the callback finished first");
                worker.join().unwrap();
            }
        });
    });
}

#[test]
fn await_on_a_shared_future_says_so_and_leaves_it_readable() {
    watchdog(LIMIT, || {
        on_both_runtimes(|| async {
            let (future, promise) = Future::<NotClone>::pending();
            let other = future.clone();
            let worker = later(promise, NotClone(5));
            assert_eq!(future.await, Err(FutureError::Shared));
            // The other handle still reads it.
            other.done_async().await;
            assert_eq!(other.result(), Ok(&NotClone(5)));
            worker.join().unwrap();
        });
    });
}

#[test]
fn send_but_not_sync_errors_complete_on_another_thread() {
    watchdog(LIMIT, || {
        on_both_runtimes(|| async {
            // `Box<dyn Error + Send>` is not `Sync`: the promise still crosses threads.
            let (future, promise) = Future::<u8, Box<dyn std::error::Error + Send>>::pending();
            let worker = thread::spawn(move || {
                promise.run(|| Err(Box::new(std::io::Error::other("not a number")) as _));
            });
            match future.await {
                Err(FutureError::Raised(e)) => assert_eq!(e.to_string(), "not a number"),
                other => panic!("unexpected {other:?}"),
            }
            worker.join().unwrap();
        });
    });
}

/// Polls `stream` to its end from async code.
async fn collect<S: Stream + Unpin>(mut stream: S) -> Vec<S::Item> {
    let mut out = Vec::new();
    while let Some(item) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
    {
        out.push(item);
    }
    out
}

#[test]
fn as_completed_stream_yields_done_first_then_completion_order() {
    watchdog(LIMIT, || {
        on_both_runtimes(|| async {
            let pairs: Vec<_> = (0..5).map(|_| Future::<usize>::pending()).collect();
            let futures: Vec<_> = pairs.iter().map(|(f, _)| f.clone()).collect();
            let promises: Vec<_> = pairs.into_iter().map(|(_, p)| p).collect();
            let done = Future::<usize>::ready(99);
            let stream = as_completed_stream(
                std::iter::once(done)
                    .chain(futures.iter().cloned())
                    .chain(futures.iter().cloned()),
            );
            assert_eq!(stream.size_hint(), (6, Some(6)), "duplicates collapsed");
            let order = [3, 1, 4, 0, 2];
            let worker = thread::spawn(move || {
                for i in order {
                    promises[i].set_result(i).unwrap();
                    thread::sleep(Duration::from_millis(2));
                }
            });
            let got: Vec<usize> = collect(stream)
                .await
                .into_iter()
                .map(|f| *f.result().unwrap())
                .collect();
            assert_eq!(got, [99, 3, 1, 4, 0, 2]);
            worker.join().unwrap();
        });
    });
}

#[test]
fn dropped_stream_withdraws_and_cancelled_futures_count_as_done() {
    watchdog(LIMIT, || {
        on_both_runtimes(|| async {
            let (a, _pa) = Future::<u8>::pending();
            let (b, _pb) = Future::<u8>::pending();
            let mut stream = as_completed_stream([a.clone(), b.clone()]);
            b.cancel();
            let first = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx))
                .await
                .unwrap();
            assert!(first.cancelled());
            drop(stream);
            // `a` is still pending and can still complete normally.
            assert!(!a.done());
        });
    });
}
