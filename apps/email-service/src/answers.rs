//! The SMTP server's answers, recorded by group commit ([`crate::group`]): the answers of
//! e-mails sent at about the same time are recorded by one statement
//! ([`store::record_answers`]) instead of one each.
//!
//! An e-mail's answer is recorded right after the server accepted it, and the worker sends many
//! e-mails at once, so their answers come within milliseconds of each other. The window between
//! the server's acceptance and the record's commit (see [`crate::delivery`]) grows by at most one
//! statement's time. A statement that fails for a reason of the connection fails every answer in
//! it, and each sender retries on its own schedule ([`crate::delivery`]); one that fails for a
//! reason of the data (a constraint) is tried again answer by answer, so one bad answer fails
//! only its own e-mail.

use sqlx::PgPool;

use crate::{
    group::{Group, Statement},
    store::{self, Recorded, SentEmail},
};

/// The statement that records answers ([`store::record_answers`]).
#[derive(Debug)]
pub struct RecordAnswers;

impl Statement for RecordAnswers {
    const NAME: &'static str = "email.record_answers";
    type Request = SentEmail;
    type Output = Recorded;

    async fn run(pool: &PgPool, answers: &[&SentEmail]) -> sqlx::Result<Vec<Recorded>> {
        let now = store::record_answers(pool, answers).await?;
        Ok(answers
            .iter()
            .map(|answer| match now.contains(&answer.event_id) {
                true => Recorded::Now,
                false => Recorded::Before,
            })
            .collect())
    }
}

/// Records answers, several in one statement when they come together: `run(answer)` records
/// one and says whether this call recorded it or it was recorded before.
pub type Answers = Group<RecordAnswers>;
