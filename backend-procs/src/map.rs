//! [`ChunkedMap`]: `ProcessPool::map`, Python's `map(fn, iterable, chunksize=n)`.
//!
//! Inputs go to the workers in chunks, one message each way per chunk. The look-ahead, the one
//! deadline for the whole iteration and the cancel-on-drop are the core's [`Map`], run over
//! chunks (a chunk is one task of the pool); this module only cuts the input into chunks and
//! flattens each chunk's outcomes back into items, in order.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

use std::time::Duration;

use futurepool_core::{
    Future, FutureError, Job, Map, MapOptions, OptionsError, Outcome, Submit, SubmitError,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::pool::ProcessPool;

/// One chunk of a map as a job of the pool: `f` over a `Vec` of inputs, one outcome per input.
/// Not nameable outside this crate; only [`ProcessPool::map`] makes one.
#[doc(hidden)]
pub struct ChunkJob<F, A, R> {
    pub(crate) f: F,
    _types: PhantomData<fn(A) -> R>,
}

impl<F: Copy, A, R> Clone for ChunkJob<F, A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Copy, A, R> Copy for ChunkJob<F, A, R> {}

impl<F, A, R> fmt::Debug for ChunkJob<F, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkJob({})", std::any::type_name::<F>())
    }
}

impl<F, A, R> Job for ChunkJob<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + Sync + 'static,
{
    type Input = Vec<A>;
    type Output = Vec<Outcome<R>>;
    type Error = Infallible;

    /// Runs the chunk right here (what any executor other than a process pool would do).
    fn call(&self, input: Vec<A>) -> Result<Vec<Outcome<R>>, Infallible> {
        Ok(input.into_iter().map(|a| Ok((self.f)(a))).collect())
    }
}

impl<F, A, R> Submit<ChunkJob<F, A, R>> for ProcessPool
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
{
    fn submit_job(
        &self,
        job: &ChunkJob<F, A, R>,
        input: Vec<A>,
    ) -> Result<Future<Vec<Outcome<R>>>, SubmitError> {
        self.submit_chunk(&job.f, input, self.shared.task_timeout)
    }

    /// One timeout for the whole chunk (one call to one worker).
    fn submit_job_timeout(
        &self,
        job: &ChunkJob<F, A, R>,
        input: Vec<A>,
        timeout: Duration,
    ) -> Result<Future<Vec<Outcome<R>>>, SubmitError> {
        self.submit_chunk(&job.f, input, Some(timeout))
    }

    fn enforces_task_timeout(&self) -> bool {
        true
    }
}

/// Cuts an iterator into `Vec`s of `size` items (the last one shorter).
#[doc(hidden)]
#[derive(Debug)]
pub(crate) struct Chunks<I> {
    inputs: I,
    size: usize,
}

impl<I: Iterator> Iterator for Chunks<I> {
    type Item = Vec<I::Item>;

    fn next(&mut self) -> Option<Vec<I::Item>> {
        let chunk: Vec<I::Item> = self.inputs.by_ref().take(self.size).collect();
        (!chunk.is_empty()).then_some(chunk)
    }
}

/// The core's look-ahead map, over chunks.
type ChunkMapInner<'a, F, A, R, I> = Map<'a, ProcessPool, ChunkJob<F, A, R>, Chunks<I>>;

/// The iterator of [`ProcessPool::map`]: every item's outcome, in input order.
pub struct ChunkedMap<'a, F, A, R, I>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
    I: Iterator<Item = A>,
{
    chunks: Option<ChunkMapInner<'a, F, A, R, I>>,
    /// Why the map was refused, yielded once.
    refusal: Option<FutureError<Infallible>>,
    /// The outcomes of the chunk being read.
    current: VecDeque<Outcome<R>>,
}

impl<'a, F, A, R, I> ChunkedMap<'a, F, A, R, I>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
    I: Iterator<Item = A>,
{
    pub(crate) fn new(
        pool: &'a ProcessPool,
        f: F,
        inputs: I,
        options: MapOptions,
    ) -> Result<Self, OptionsError> {
        options.check()?;
        let chunksize = options.chunksize;
        if let Err(refusal) = pool.check_remote(&f) {
            return Ok(ChunkedMap {
                chunks: None,
                refusal: Some(refusal.into()),
                current: VecDeque::new(),
            });
        }
        // The look-ahead is counted in items; the core's map counts tasks (chunks).
        let chunks_ahead = match options.buffersize {
            Some(items) => items.div_ceil(chunksize).max(1),
            None => 2 * pool.max_workers(),
        };
        let job = ChunkJob {
            f,
            _types: PhantomData,
        };
        let chunks = Chunks {
            inputs,
            size: chunksize,
        };
        let mut inner = MapOptions::new().buffersize(chunks_ahead);
        if let Some(timeout) = options.timeout {
            inner = inner.timeout(timeout);
        }
        if let Some(task_timeout) = options.task_timeout {
            inner = inner.task_timeout(task_timeout);
        }
        Ok(ChunkedMap {
            chunks: Some(Map::new(pool, job, chunks, inner)?),
            refusal: None,
            current: VecDeque::new(),
        })
    }
}

impl<F, A, R, I> Iterator for ChunkedMap<'_, F, A, R, I>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
    I: Iterator<Item = A>,
{
    type Item = Outcome<R>;

    fn next(&mut self) -> Option<Outcome<R>> {
        loop {
            if let Some(item) = self.current.pop_front() {
                return Some(item);
            }
            if let Some(refusal) = self.refusal.take() {
                return Some(Err(refusal));
            }
            match self.chunks.as_mut()?.next()? {
                Ok(items) => self.current.extend(items),
                // A chunk that failed as a whole (refused, cancelled by a shutdown, past the
                // map's deadline) is one error, as Python raises one.
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

impl<F, A, R, I> fmt::Debug for ChunkedMap<'_, F, A, R, I>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
    I: Iterator<Item = A>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedMap")
            .field("task", &std::any::type_name::<F>())
            .field("chunks", &self.chunks)
            .field("buffered", &self.current.len())
            .finish_non_exhaustive()
    }
}
