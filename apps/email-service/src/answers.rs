//! Group commit of the SMTP server's answers: the answers of e-mails sent at about the same time
//! are recorded by one statement ([`store::record_answers`]) instead of one each.
//!
//! An e-mail's answer is recorded right after the server accepted it, and the worker sends many
//! e-mails at once (a receive brings up to ten events, all sent together), so their answers come
//! within milliseconds of each other. One task records them: it takes the first answer waiting,
//! with every other already waiting (at most [`MAX_BATCH`]), records them in one statement and
//! tells each sender the result; answers that arrive meanwhile wait for that statement and go in
//! the next. Nothing waits on purpose — a lone answer goes at once — so the window between the
//! server's acceptance and the record's commit (see [`crate::delivery`]) grows by at most one
//! statement's time, while the database sees fewer round trips under load.
//!
//! Failure paths: a statement that fails for a reason of the connection (PostgreSQL restarting,
//! the pool timing out) fails every answer in it, and each sender retries on its own schedule
//! ([`crate::delivery`]); one that fails for a reason of the data (a constraint) is tried again
//! answer by answer, so one bad answer fails only its own e-mail. The task stops when the last
//! [`Answers`] handle is dropped; if it is gone, answers are recorded directly.
//!
//! Written here rather than taken from a crate: the batching is twenty lines over a channel, and
//! the statement and its failure rules are this service's own.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use worker::{Classify, Failure};

use crate::store::{self, Recorded, SentEmail};

/// The most answers one statement records.
pub const MAX_BATCH: usize = 64;

/// The result of recording one answer; the error is shared by the answers of one statement.
pub type AnswerResult = Result<Recorded, Arc<sqlx::Error>>;

/// A handle to the task that records answers over one pool.
#[derive(Debug, Clone)]
pub struct Answers {
    pool: PgPool,
    jobs: mpsc::Sender<Job>,
}

#[derive(Debug)]
struct Job {
    answer: SentEmail,
    reply: oneshot::Sender<AnswerResult>,
}

impl Answers {
    /// Starts the recording task over `pool` (on the current Tokio runtime).
    pub fn start(pool: PgPool) -> Self {
        let (jobs, queue) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(record_all(pool.clone(), queue));
        Answers { pool, jobs }
    }

    /// Records `answer` (in a statement with the others waiting) and says whether this call
    /// recorded it or it was recorded before.
    ///
    /// # Errors
    /// The statement's error, shared with the other answers it carried.
    pub async fn record(&self, answer: SentEmail) -> AnswerResult {
        let (reply, result) = oneshot::channel();
        let job = Job { answer, reply };
        let job = match self.jobs.send(job).await {
            Ok(()) => match result.await {
                Ok(recorded) => return recorded,
                // The task stopped with the answer unrecorded (it cannot have recorded it
                // without replying): record it here.
                Err(_) => return Err(Arc::new(sqlx::Error::WorkerCrashed)),
            },
            Err(mpsc::error::SendError(job)) => job,
        };
        record_one(&self.pool, &job.answer).await
    }
}

/// Records batches until every handle is dropped.
async fn record_all(pool: PgPool, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        record_batch(&pool, std::mem::take(&mut batch)).await;
    }
}

/// Records `batch` in one statement and replies to each sender; on an error of the data, answer
/// by answer.
async fn record_batch(pool: &PgPool, batch: Vec<Job>) {
    let answers: Vec<&SentEmail> = batch.iter().map(|job| &job.answer).collect();
    match store::record_answers(pool, &answers).await {
        Ok(now) => {
            for job in batch {
                let recorded = if now.contains(&job.answer.event_id) {
                    Recorded::Now
                } else {
                    Recorded::Before
                };
                let _ = job.reply.send(Ok(recorded));
            }
        }
        Err(error) if batch.len() == 1 || error.failure() == Failure::Retryable => {
            let error = Arc::new(error);
            for job in batch {
                let _ = job.reply.send(Err(Arc::clone(&error)));
            }
        }
        Err(_) => {
            for job in batch {
                let recorded = record_one(pool, &job.answer).await;
                let _ = job.reply.send(recorded);
            }
        }
    }
}

/// Records one answer in a statement of its own.
async fn record_one(pool: &PgPool, answer: &SentEmail) -> AnswerResult {
    match store::record_answers(pool, &[answer]).await {
        Ok(now) if now.is_empty() => Ok(Recorded::Before),
        Ok(_) => Ok(Recorded::Now),
        Err(error) => Err(Arc::new(error)),
    }
}
