//! `db retention`: what each bounded table holds against how long its rows are kept, and how
//! many rows the relay's next purge deletes (libs/outbox/src/retention.rs says why each table
//! keeps its rows as long as it does).

use ::outbox::retention::{self, Table, TableStatus};
use serde::Serialize;
use settings::RelaySettings;
use sqlx::PgPool;

use crate::{AdminError, render};

/// Every bounded table's status.
#[derive(Debug, Serialize)]
pub struct RetentionReport {
    /// One entry per table, in [`Table::ALL`] order.
    pub tables: Vec<TableStatus>,
}

/// Counts each bounded table's rows (a full count per table: run it by hand, not in a loop).
///
/// # Errors
/// [`AdminError`] when a query fails.
pub async fn status(pool: &PgPool, relay: &RelaySettings) -> Result<RetentionReport, AdminError> {
    let mut conn = pool.acquire().await?;
    let mut tables = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        tables.push(retention::status(&mut conn, table, table.retention(relay)).await?);
    }
    Ok(RetentionReport { tables })
}

/// The report as a table.
pub fn render(report: &RetentionReport) -> String {
    let rows: Vec<Vec<String>> = report
        .tables
        .iter()
        .map(|t| {
            vec![
                t.table.name().to_owned(),
                render::age(t.retention_s as f64),
                t.rows.to_string(),
                t.due.to_string(),
                match t.rows {
                    0 => "-".to_owned(),
                    _ => render::age(t.oldest_age_s),
                },
            ]
        })
        .collect();
    render::table(&["table", "kept", "rows", "due for purge", "oldest"], &rows)
}
