//! Group commit: requests for the same statement that come at about the same time are carried
//! out by one run of it, instead of one each. The e-mail worker uses it twice: for the claims
//! made before the send ([`crate::store::claim_order_emails`]) and for the answers recorded after
//! it ([`crate::answers`]).
//!
//! A receive brings up to ten events and the worker handles them all at once, so their claims,
//! and later their answers, come within milliseconds of each other. One task per statement runs
//! them: it takes the first request waiting, with every other already waiting (at most
//! [`MAX_BATCH`]), runs the statement once for them all and tells each caller its own result;
//! requests that arrive meanwhile wait for that run and go in the next. Nothing waits on
//! purpose — a lone request goes at once — so a request waits at most one statement's time
//! more, while the database sees one statement and one commit where it saw ten.
//!
//! Failure paths: a run that fails for a reason of the connection (PostgreSQL restarting, the
//! pool timing out) fails every request in it, and each caller retries on its own schedule; one
//! that fails for a reason of the data (a constraint) is run again request by request, so one bad
//! request fails only itself. The task stops when the last [`Group`] handle is dropped; if it is
//! gone, a request runs the statement on its own.
//!
//! The statement runs on the group's task, in no caller's trace; each caller's wait for it is
//! a `db.group_statement` span under the caller's (the statement's name in
//! `db.operation.name`), so a handler's trace still shows its database time.
//!
//! Written here rather than taken from a crate: the batching is a few lines over a channel, and
//! the failure rules (which errors split a batch) are this service's own.

use std::{future::Future, sync::Arc};

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use worker::{Classify, Failure};

/// The most requests one run of a statement carries.
pub const MAX_BATCH: usize = 64;

/// The result of one request; the error is shared by the requests of one run.
pub type GroupResult<T> = Result<T, Arc<sqlx::Error>>;

/// A statement that can be run for many requests at once.
pub trait Statement: Send + Sync + 'static {
    /// The statement's name in the span of each request ([`Group::run`]).
    const NAME: &'static str;
    /// One request.
    type Request: Send + Sync + 'static;
    /// What one request gets back.
    type Output: Send + 'static;

    /// Runs the statement once for `requests`: one output per request, in their order.
    fn run<'a>(
        pool: &'a PgPool,
        requests: &'a [&'a Self::Request],
    ) -> impl Future<Output = sqlx::Result<Vec<Self::Output>>> + Send + 'a;
}

/// A handle to the task that runs statement `S` over one pool for whoever asks.
#[derive(Debug)]
pub struct Group<S: Statement> {
    pool: PgPool,
    jobs: mpsc::Sender<Job<S>>,
}

impl<S: Statement> Clone for Group<S> {
    fn clone(&self) -> Self {
        Group {
            pool: self.pool.clone(),
            jobs: self.jobs.clone(),
        }
    }
}

#[derive(Debug)]
struct Job<S: Statement> {
    request: S::Request,
    reply: oneshot::Sender<GroupResult<S::Output>>,
}

impl<S: Statement> Group<S> {
    /// Starts the task over `pool` (on the current Tokio runtime).
    pub fn start(pool: PgPool) -> Self {
        let (jobs, queue) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(run_all::<S>(pool.clone(), queue));
        Group { pool, jobs }
    }

    /// Runs the statement for `request`, together with the other requests waiting.
    ///
    /// # Errors
    /// The statement's error, shared with the other requests of its run.
    pub async fn run(&self, request: S::Request) -> GroupResult<S::Output> {
        // The statement runs on the group's task, outside the caller's trace: this span, under
        // the caller's, covers the request's wait for it and carries the statement's name.
        let span = tracing::debug_span!(
            "db.group_statement",
            db.system.name = "postgresql",
            db.operation.name = S::NAME,
        );
        self.run_in_group(request).instrument(span).await
    }

    async fn run_in_group(&self, request: S::Request) -> GroupResult<S::Output> {
        let (reply, result) = oneshot::channel();
        let job = Job { request, reply };
        let job = match self.jobs.send(job).await {
            Ok(()) => match result.await {
                Ok(output) => return output,
                // The task stopped with the request unanswered (it cannot have run it without
                // replying, unless it panicked mid-way): the caller's retry decides.
                Err(_) => return Err(Arc::new(sqlx::Error::WorkerCrashed)),
            },
            Err(mpsc::error::SendError(job)) => job,
        };
        run_one::<S>(&self.pool, &job.request).await
    }
}

/// Runs batches until every handle is dropped.
async fn run_all<S: Statement>(pool: PgPool, mut queue: mpsc::Receiver<Job<S>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        run_batch::<S>(&pool, std::mem::take(&mut batch)).await;
    }
}

/// Runs `batch` in one statement and replies to each caller; on an error of the data, request
/// by request.
async fn run_batch<S: Statement>(pool: &PgPool, batch: Vec<Job<S>>) {
    let requests: Vec<&S::Request> = batch.iter().map(|job| &job.request).collect();
    let ran = S::run(pool, &requests).await;
    drop(requests);
    match ran {
        Ok(outputs) if outputs.len() == batch.len() => {
            for (job, output) in batch.into_iter().zip(outputs) {
                let _ = job.reply.send(Ok(output));
            }
        }
        Ok(_) => {
            // A statement that does not answer every request is a bug of its own; the requests
            // are run one by one rather than be told something wrong.
            tracing::error!("a grouped statement returned a wrong number of results");
            one_by_one::<S>(pool, batch).await;
        }
        Err(error) if batch.len() == 1 || error.failure() == Failure::Retryable => {
            let error = Arc::new(error);
            for job in batch {
                let _ = job.reply.send(Err(Arc::clone(&error)));
            }
        }
        Err(_) => one_by_one::<S>(pool, batch).await,
    }
}

async fn one_by_one<S: Statement>(pool: &PgPool, batch: Vec<Job<S>>) {
    for job in batch {
        let output = run_one::<S>(pool, &job.request).await;
        let _ = job.reply.send(output);
    }
}

/// Runs the statement for one request on its own.
async fn run_one<S: Statement>(pool: &PgPool, request: &S::Request) -> GroupResult<S::Output> {
    match S::run(pool, &[request]).await {
        Ok(mut outputs) if outputs.len() == 1 => Ok(outputs.remove(0)),
        Ok(_) => Err(Arc::new(sqlx::Error::RowNotFound)),
        Err(error) => Err(Arc::new(error)),
    }
}
