//! Small text helpers shared by the reports: aligned tables and fields, times, ages, money and
//! one-line excerpts.

use chrono::{DateTime, Utc};
use domain::{Currency, Money};
use serde::Serialize;

use crate::AdminError;

/// `report` as pretty JSON (`--json`) or as the text `text` makes of it.
///
/// # Errors
/// [`AdminError::Json`] when the report cannot be encoded.
pub fn output<T: Serialize>(
    json: bool,
    report: &T,
    text: fn(&T) -> String,
) -> Result<String, AdminError> {
    if json {
        Ok(serde_json::to_string_pretty(report)? + "\n")
    } else {
        Ok(text(report))
    }
}

/// Rows under headers, each column as wide as its widest cell, two spaces apart, indented by
/// two spaces. The last column is not padded (it may be long: an error, a reason).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    std::iter::once(&header)
        .chain(rows)
        .map(|row| line(&widths, row))
        .collect()
}

fn line(widths: &[usize], cells: &[String]) -> String {
    let last = cells.len().saturating_sub(1);
    let padded: Vec<String> = cells
        .iter()
        .enumerate()
        .map(|(i, cell)| {
            if i == last {
                cell.clone()
            } else {
                format!("{cell:<width$}", width = widths[i])
            }
        })
        .collect();
    format!("  {}\n", padded.join("  ").trim_end())
}

/// `name  value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(name, value)| format!("{}\n", format!("{name:<width$}  {value}").trim_end()))
        .collect()
}

/// `2026-05-01 12:00:03 UTC`.
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration in seconds as the two largest units: `42 s`, `4 min 12 s`, `3 h 5 min`, `2 d 4 h`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// An amount in minor units as `14.50 EUR` (the code as stored when it is not a valid one).
pub fn money(amount_minor: i64, currency: &str) -> String {
    match Currency::parse(currency) {
        Ok(currency) => Money::new(amount_minor, currency).to_string(),
        Err(_) => format!("{amount_minor} (minor units) {currency}"),
    }
}

/// The text on one line, cut to `max` characters with `…`.
pub fn excerpt(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

/// `1 message`, `2 messages`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_columns_are_as_wide_as_their_widest_cell() {
        let rows = vec![
            vec!["1".to_owned(), "order.placed".to_owned(), "boom".to_owned()],
            vec!["22".to_owned(), "x".to_owned(), "a longer error".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "EVENT", "ERROR"], &rows),
            "  ID  EVENT         ERROR\n  1   order.placed  boom\n  22  x             a longer error\n"
        );
    }

    #[test]
    fn fields_align_their_values() {
        assert_eq!(
            fields(&[
                ("status", "placed".into()),
                ("id", "1".into()),
                ("none", String::new())
            ]),
            "status  placed\nid      1\nnone\n"
        );
    }

    #[test]
    fn ages_show_the_two_largest_units() {
        assert_eq!(age(0.4), "0 s");
        assert_eq!(age(252.0), "4 min 12 s");
        assert_eq!(age(3.0 * 3600.0 + 300.0), "3 h 5 min");
        assert_eq!(age(2.0 * 86_400.0 + 4.0 * 3600.0), "2 d 4 h");
    }

    #[test]
    fn excerpts_are_one_line_and_cut_on_a_character_boundary() {
        assert_eq!(excerpt("a\nb  c", 10), "a b c");
        assert_eq!(excerpt("ééé", 2), "éé…");
    }

    #[test]
    fn money_has_two_decimals_and_the_currency() {
        assert_eq!(money(1450, "EUR"), "14.50 EUR");
        assert_eq!(money(5, "xx"), "5 (minor units) xx");
    }
}
