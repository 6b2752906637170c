//! SQL statements and transactions per order, from PostgreSQL's own counters in the bench's
//! database: `pg_stat_statements` (calls per normalised statement; scripts/services.sh preloads
//! the module, this creates the extension in the bench's database only) and `pg_stat_database`
//! (`xact_commit`, `xact_rollback`).
//!
//! The statements are counted from a reset at the start of the window (for this database only,
//! so a shared test cluster's other databases keep theirs) to its end. The transactions are the
//! difference of `pg_stat_database` read before the window and after the processes stopped and
//! their backends exited: a backend reports its counts up to 10 s late while its connection
//! idles, but always when it exits. The bench's own statements in the window (its completion
//! polls, the reset) are left out of the statements and, with its stats reads, subtracted from
//! the commits (give or take the few transactions of preparing its statements on a connection).

use std::time::{Duration, Instant};

use sqlx::PgPool;

/// How many statements the table of the most called lists.
const TOP: usize = 10;
/// How many statements the table of the longest running lists.
const TOP_BY_TIME: usize = 5;
/// The longest statement text shown (in characters).
const SHOWN_CHARS: usize = 110;

/// Resets the counters of one database (PostgreSQL 12+: user, database, query; 0 = any). Only
/// parameters, no constants, so its normalised text is this text (and it can be left out).
const RESET_SQL: &str = "SELECT pg_stat_statements_reset($1::oid, $2::oid, $3::int8)";
const XACTS_SQL: &str =
    "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database WHERE datid = $1::oid";
const CONNECTED_SQL: &str = "SELECT count(*) FROM pg_stat_activity \
     WHERE datid = $1::oid AND backend_type = 'client backend'";
const STATEMENTS_SQL: &str = "SELECT query, calls, total_exec_time FROM pg_stat_statements \
     WHERE dbid = $1::oid ORDER BY calls DESC";

/// The bench's database and whether its statements can be counted.
pub struct SqlStats {
    pool: PgPool,
    dbid: i64,
    /// Why `pg_stat_statements` cannot be read, if it cannot.
    unavailable: Option<String>,
    /// The bench's own statements in the window, left out of the table.
    own: Vec<&'static str>,
}

/// Commits and rollbacks of the database so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Xacts {
    commits: i64,
    rollbacks: i64,
    /// Sessions (connections) opened to the database.
    sessions: i64,
}

/// One normalised statement's calls and total execution time in the window.
pub struct Statement {
    query: String,
    calls: i64,
    total_ms: f64,
}

/// What the window cost PostgreSQL.
pub struct SqlUse {
    statements: Vec<Statement>,
    /// `None` when `pg_stat_statements` could not be read (with the reason).
    unavailable: Option<String>,
    own_calls: i64,
    /// Execution time of the bench's own statements that were left out, in ms.
    own_ms: f64,
    xacts: Xacts,
}

impl SqlStats {
    /// Creates the extension in `pool`'s database; `own` are the bench's statements that will
    /// run in the window (left out; without constants, which the normalised text replaces).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn prepare(pool: &PgPool, own: Vec<&'static str>) -> anyhow::Result<Self> {
        let dbid: i64 = sqlx::query_scalar(
            "SELECT oid::int8 FROM pg_database WHERE datname = current_database()",
        )
        .fetch_one(pool)
        .await?;
        let created = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .execute(pool)
            .await;
        let mut own = own;
        own.push(RESET_SQL);
        Ok(SqlStats {
            pool: pool.clone(),
            dbid,
            unavailable: created.err().map(|e| e.to_string()),
            own,
        })
    }

    /// The commit and rollback counts now.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn xacts(&self) -> anyhow::Result<Xacts> {
        let (commits, rollbacks, sessions): (i64, i64, i64) = sqlx::query_as(XACTS_SQL)
            .bind(self.dbid)
            .fetch_one(&self.pool)
            .await?;
        Ok(Xacts {
            commits,
            rollbacks,
            sessions,
        })
    }

    /// Starts the window: resets this database's statement counters (a failure, such as the
    /// module not being preloaded, is reported in the table instead).
    pub async fn reset(&mut self) {
        if self.unavailable.is_some() {
            return;
        }
        let reset = sqlx::query(RESET_SQL)
            .bind(0_i64)
            .bind(self.dbid)
            .bind(0_i64)
            .execute(&self.pool)
            .await;
        self.unavailable = reset.err().map(|e| e.to_string());
    }

    /// Ends the window for the statements: their counts since the reset.
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn statements(&self) -> anyhow::Result<Vec<Statement>> {
        if self.unavailable.is_some() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, i64, f64)> = sqlx::query_as(STATEMENTS_SQL)
            .bind(self.dbid)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(query, calls, total_ms)| Statement {
                query,
                calls,
                total_ms,
            })
            .collect())
    }

    /// What the window cost: `statements` read at its end, transactions from `before` to now,
    /// once the stopped processes' backends have gone (at most 10 s).
    ///
    /// # Errors
    /// When the database cannot be reached.
    pub async fn finish(
        &self,
        statements: Vec<Statement>,
        before: Xacts,
    ) -> anyhow::Result<SqlUse> {
        let waits = self.others_gone().await?;
        let after = self.xacts().await?;
        let (own, theirs): (Vec<Statement>, Vec<Statement>) = statements
            .into_iter()
            .partition(|s| self.own.iter().any(|own| s.query.trim() == own.trim()));
        Ok(SqlUse {
            statements: theirs,
            unavailable: self.unavailable.clone(),
            // Its other statements, one transaction each: the commit count read before the
            // window (its commit lands inside), the statements read, the connection counts.
            own_calls: own.iter().map(|s| s.calls).sum::<i64>() + 2 + waits,
            own_ms: own.iter().map(|s| s.total_ms).sum(),
            xacts: Xacts {
                commits: after.commits - before.commits,
                rollbacks: after.rollbacks - before.rollbacks,
                sessions: after.sessions - before.sessions,
            },
        })
    }
}

impl SqlStats {
    /// Waits until the only client connections to the database are the bench's own pool's
    /// (every other backend has exited, and so reported its counts), for at most 10 s; how many
    /// times it asked.
    async fn others_gone(&self) -> anyhow::Result<i64> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut asked = 0;
        loop {
            let connected: i64 = sqlx::query_scalar(CONNECTED_SQL)
                .bind(self.dbid)
                .fetch_one(&self.pool)
                .await?;
            asked += 1;
            if connected <= i64::from(self.pool.size()) || Instant::now() > deadline {
                return Ok(asked);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl SqlUse {
    /// Statements of our processes in the window (all of them, not only the listed ones).
    pub fn statements(&self) -> i64 {
        self.statements.iter().map(|s| s.calls).sum()
    }

    /// Transactions committed by our processes (the bench's own subtracted).
    pub fn commits(&self) -> i64 {
        (self.xacts.commits - self.own_calls).max(0)
    }

    /// The table: the most called statements per order, the total, and transactions per order.
    pub fn markdown(&self, orders: usize) -> String {
        let n = orders.max(1) as f64;
        let mut out = String::new();
        match &self.unavailable {
            Some(reason) => out.push_str(&format!(
                "pg_stat_statements could not be read ({}), so there are no statement counts; \
                 it needs `shared_preload_libraries = 'pg_stat_statements'` (scripts/services.sh \
                 sets it when it starts PostgreSQL).\n\n",
                one_line(reason)
            )),
            None => out.push_str(&self.statements_table(n)),
        }
        out.push_str(&format!(
            "| transactions | per order |\n| --- | ---: |\n| committed | {:.2} |\n| rolled back | {:.2} |\n| connections opened (in the window: {}) | {:.3} |\n",
            self.commits() as f64 / n,
            self.xacts.rollbacks as f64 / n,
            self.xacts.sessions,
            self.xacts.sessions as f64 / n
        ));
        out.push_str(&format!(
            "\nLeft out: the bench's own {} transactions (its completion polls and stats reads; \
             {:.2} s of statement execution, which is in PostgreSQL's CPU above).\n",
            self.own_calls,
            self.own_ms / 1000.0
        ));
        out
    }

    /// Every statement of the window, most called first, in full (whitespace collapsed): the
    /// list behind the report's top ten, for finding where the statements per order come from.
    pub fn all_statements_markdown(&self, orders: usize) -> String {
        let n = orders.max(1) as f64;
        let mut out = String::from(
            "| statement (normalised) | calls / order | mean ms | ms / order |\n| --- | ---: | ---: | ---: |\n",
        );
        for s in &self.statements {
            let text = s.query.split_whitespace().collect::<Vec<_>>().join(" ");
            out.push_str(&format!(
                "| `{}` | {:.2} | {:.3} | {:.3} |\n",
                text.replace('|', "¦").replace('`', "'"),
                s.calls as f64 / n,
                s.total_ms / (s.calls.max(1) as f64),
                s.total_ms / n
            ));
        }
        out
    }

    /// The most called statements, the total, then the ones that took the most time.
    fn statements_table(&self, n: f64) -> String {
        let mut out = String::from(
            "| statement (normalised), most called | calls / order | mean ms | ms / order |\n| --- | ---: | ---: | ---: |\n",
        );
        for s in self.statements.iter().take(TOP) {
            out.push_str(&statement_row(s, n));
        }
        let total_ms: f64 = self.statements.iter().map(|s| s.total_ms).sum();
        out.push_str(&format!(
            "| all statements ({} distinct) | {:.2} | {:.3} | {:.3} |\n\n",
            self.statements.len(),
            self.statements() as f64 / n,
            total_ms / (self.statements().max(1) as f64),
            total_ms / n
        ));
        let mut by_time: Vec<&Statement> = self.statements.iter().collect();
        by_time.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        out.push_str(
            "| statement (normalised), most time (waits for locks included) | calls / order | mean ms | ms / order |\n| --- | ---: | ---: | ---: |\n",
        );
        for s in by_time.into_iter().take(TOP_BY_TIME) {
            out.push_str(&statement_row(s, n));
        }
        out.push('\n');
        out
    }
}

fn statement_row(s: &Statement, n: f64) -> String {
    format!(
        "| `{}` | {:.2} | {:.3} | {:.3} |\n",
        one_line(&s.query),
        s.calls as f64 / n,
        s.total_ms / (s.calls.max(1) as f64),
        s.total_ms / n
    )
}

/// A statement on one line, for a table cell: whitespace collapsed, `|` and backticks replaced,
/// cut at [`SHOWN_CHARS`].
fn one_line(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = flat.replace('|', "¦").replace('`', "'");
    match flat.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_is_shown_on_one_shortened_line_without_table_breakers() {
        assert_eq!(
            one_line("SELECT a,\n   b | c\tFROM `t`"),
            "SELECT a, b ¦ c FROM 't'"
        );
        let long = "x".repeat(SHOWN_CHARS + 5);
        assert_eq!(one_line(&long).chars().count(), SHOWN_CHARS + 1);
    }
}
