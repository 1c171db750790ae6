//! [`Remote`]: a registered function as a [`Job`], so generic code (the `Executor`/`Submit`
//! traits) can run it on a process pool — or on a thread pool, where it is simply called.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use futurepool_core::{Future, Job, Submit, SubmitError};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::pool::ProcessPool;

/// A registered function as a [`Job`], so generic code (the `Executor`/`Submit` traits, `map`)
/// can run it on a process pool — or on a thread pool, where it is simply called.
pub struct Remote<F, A, R> {
    f: F,
    _types: PhantomData<fn(A) -> R>,
}

/// Wraps a registered function for the `Submit` trait.
pub fn remote<F, A, R>(f: F) -> Remote<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
{
    Remote {
        f,
        _types: PhantomData,
    }
}

impl<F: Copy, A, R> Clone for Remote<F, A, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Copy, A, R> Copy for Remote<F, A, R> {}

impl<F, A, R> fmt::Debug for Remote<F, A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::any::type_name::<F>())
    }
}

impl<F, A, R> Job for Remote<F, A, R>
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Send + 'static,
    R: Send + Sync + 'static,
{
    type Input = A;
    type Output = R;
    type Error = std::convert::Infallible;

    fn call(&self, input: A) -> Result<R, Self::Error> {
        Ok((self.f)(input))
    }
}

impl<F, A, R> Submit<Remote<F, A, R>> for ProcessPool
where
    F: Fn(A) -> R + Copy + Send + Sync + 'static,
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + Sync + 'static,
{
    fn submit_job(&self, job: &Remote<F, A, R>, input: A) -> Result<Future<R>, SubmitError> {
        self.submit(job.f, input)
    }

    fn submit_job_timeout(
        &self,
        job: &Remote<F, A, R>,
        input: A,
        timeout: Duration,
    ) -> Result<Future<R>, SubmitError> {
        self.with_task_timeout(timeout).submit(job.f, input)
    }

    fn enforces_task_timeout(&self) -> bool {
        true
    }
}
