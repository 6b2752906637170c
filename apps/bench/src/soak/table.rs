//! The soak's report: the fault table (when each fault ran, the requests it refused, its backlog
//! and the time to recover), the totals counted at the sources against what the orders should
//! have caused, the repeated e-mails, and the invariants that broke.

use std::{collections::HashMap, fmt::Write as _, time::SystemTime};

use uuid::Uuid;

use super::{
    Plan,
    count::{Counts, Mail, OrderCount},
    faults::{Fault, FaultRun, seconds_between},
    load::{Checkout, Intent},
};

/// A repeated e-mail's window opens this long before its first copy arrived (the SMTP
/// conversation, and the Maildir file's time) and closes when its last copy arrived.
const WINDOW_BEFORE_S: f64 = 1.0;

/// One line of the totals: what should be there, what was counted, and whether that is right.
struct Check {
    what: String,
    expected: String,
    counted: String,
    ok: bool,
}

impl Check {
    fn new(what: &str, expected: impl ToString, counted: impl ToString, ok: bool) -> Self {
        Check {
            what: what.to_owned(),
            expected: expected.to_string(),
            counted: counted.to_string(),
            ok,
        }
    }

    /// A count that must be zero.
    fn none(what: &str, counted: usize) -> Self {
        Check::new(what, 0, counted, counted == 0)
    }
}

/// A `Message-ID` that arrived more than once, and the faults in its window.
struct Repeat<'a> {
    order: Uuid,
    mail: &'a Mail,
    faults: Vec<FaultRun>,
}

impl Repeat<'_> {
    /// Whether the email-service was killed in its window (DESIGN.md, guarantee 8).
    fn explained(&self) -> bool {
        self.faults
            .iter()
            .any(|f| f.fault == Fault::Kill("email-service"))
    }
}

/// The whole report of a run.
pub(crate) struct Report<'a> {
    plan: Plan,
    started: SystemTime,
    checkouts: &'a [Checkout],
    runs: &'a [FaultRun],
    counts: &'a Counts,
    intents: HashMap<Uuid, Intent>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(
        plan: Plan,
        started: SystemTime,
        checkouts: &'a [Checkout],
        runs: &'a [FaultRun],
        counts: &'a Counts,
    ) -> Self {
        let intents = checkouts
            .iter()
            .filter_map(|c| Some((c.order_id?, c.intent)))
            .collect();
        Report {
            plan,
            started,
            checkouts,
            runs,
            counts,
            intents,
        }
    }

    /// Every broken invariant, one line each.
    pub(crate) fn broken(&self) -> Vec<String> {
        self.checks()
            .into_iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: expected {}, counted {}", c.what, c.expected, c.counted))
            .collect()
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# ChargeFlow soak with faults\n\n{} orders offered at {:.2}/s; {} faults of {:.1} s, \
             {:.1} s apart; {} cores; {}\n",
            self.plan.orders,
            self.plan.rate,
            self.runs.len(),
            self.plan.fault.as_secs_f64(),
            self.plan.gap.as_secs_f64(),
            std::thread::available_parallelism().map_or(0, usize::from),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        );
        let _ = writeln!(out, "{}\n", self.load_line());
        self.fault_table(&mut out);
        self.totals_table(&mut out);
        self.repeats_list(&mut out);
        let broken = self.broken();
        match broken.is_empty() {
            true => {
                let _ = writeln!(out, "\n**Every invariant held.**");
            }
            false => {
                let _ = writeln!(out, "\n**Broken:**\n");
                for line in broken {
                    let _ = writeln!(out, "- {line}");
                }
            }
        }
        out
    }

    fn load_line(&self) -> String {
        let answered = self.checkouts.iter().filter(|c| c.order_id.is_some());
        let first_try = answered.clone().filter(|c| c.refused.is_empty()).count();
        let refused: usize = self.checkouts.iter().map(|c| c.refused.len()).sum();
        let replayed = self.checkouts.iter().filter(|c| c.replayed).count();
        format!(
            "Checkouts: {} answered `201` ({first_try} at the first try, {} after being refused); \
             {refused} requests refused at the client and sent again; {replayed} answers replayed \
             from the `Idempotency-Key`.",
            answered.clone().count(),
            answered.count() - first_try,
        )
    }

    fn fault_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "| fault | start s | lasted s | requests refused | backlog orders | time to recover s |\n\
             | --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for (i, run) in self.runs.iter().enumerate() {
            let previous_end = i.checked_sub(1).map_or(self.started, |p| self.runs[p].end);
            let next_start = self.runs.get(i + 1).map(|r| r.start);
            let backlog = self.backlog(previous_end, run.end);
            let _ = writeln!(
                out,
                "| {} | {:.1} | {:.1} | {} | {} | {} |",
                run.fault.name(),
                seconds_between(self.started, run.start),
                seconds_between(run.start, run.end),
                self.refused_between(run.start, next_start),
                backlog.len(),
                recovery(&backlog, run.end),
            );
        }
        let _ = writeln!(out, "\n{}\n", self.last_settled_line());
    }

    /// The orders answered in `(from, to]`.
    fn backlog(&self, from: SystemTime, to: SystemTime) -> Vec<&OrderCount> {
        self.checkouts
            .iter()
            .filter(|c| c.answered_at.is_some_and(|at| at > from && at <= to))
            .filter_map(|c| self.counts.orders.get(&c.order_id?))
            .collect()
    }

    /// Requests sent from `from` until `to` (or the end) that were refused.
    fn refused_between(&self, from: SystemTime, to: Option<SystemTime>) -> usize {
        self.checkouts
            .iter()
            .flat_map(|c| &c.refused)
            .filter(|at| **at >= from && to.is_none_or(|to| **at < to))
            .count()
    }

    fn last_settled_line(&self) -> String {
        let Some(last_fault) = self.runs.last() else {
            return String::new();
        };
        let last = self
            .counts
            .orders
            .values()
            .filter_map(|o| o.settled_at)
            .max();
        match last {
            Some(at) if self.counts.orders.values().all(OrderCount::ended) => format!(
                "The last order settled {:.1} s after the last fault ended (target: within 15 s).",
                seconds_between(last_fault.end, at).max(0.0)
            ),
            _ => "Not every order settled.".to_owned(),
        }
    }

    fn totals_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "| check | expected | counted | |\n| --- | ---: | ---: | --- |"
        );
        for check in self.checks() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                check.what,
                check.expected,
                check.counted,
                if check.ok { "ok" } else { "**BROKEN**" }
            );
        }
    }

    fn checks(&self) -> Vec<Check> {
        let mut checks = self.order_checks();
        checks.extend(self.effect_checks());
        checks.extend(self.mail_checks());
        checks.extend(self.stock_checks());
        checks
    }

    fn order_checks(&self) -> Vec<Check> {
        let orders = &self.counts.orders;
        let answered = self.intents.len();
        let rejected: Vec<&str> = self
            .checkouts
            .iter()
            .filter_map(|c| c.rejected.as_deref())
            .collect();
        let lost = orders.values().filter(|o| o.status.is_none()).count();
        let extra = orders
            .keys()
            .filter(|id| !self.intents.contains_key(id))
            .count();
        let open = orders
            .values()
            .filter(|o| o.status.is_some() && !o.ended())
            .count();
        let wrong_end = orders
            .iter()
            .filter(|(id, o)| o.ended() && !self.meant_end(id, o))
            .count();
        vec![
            Check::new(
                "checkouts answered `201`",
                self.plan.orders,
                answered,
                rejected.is_empty(),
            ),
            Check::new(
                "orders in the database",
                answered,
                self.counts.in_db,
                lost == 0 && extra == 0,
            ),
            Check::none("lost (answered `201`, not in the database)", lost),
            Check::none("extra (in the database, never answered)", extra),
            Check::none("orders not in an end state by the deadline", open),
            Check::none(&self.wrong_end_label(), wrong_end),
        ]
    }

    /// Whether the order ended as its basket meant (an order nobody asked for has no meaning).
    fn meant_end(&self, id: &Uuid, order: &OrderCount) -> bool {
        let Some(intent) = self.intents.get(id) else {
            return true;
        };
        order
            .status
            .as_deref()
            .is_some_and(|s| intent.ends().contains(&s))
    }

    fn wrong_end_label(&self) -> String {
        let of = |intent| self.intents.values().filter(|i| **i == intent).count();
        format!(
            "orders ending other than meant ({} to ship, {} declined, {} undeliverable)",
            of(Intent::Ship),
            of(Intent::Decline),
            of(Intent::Undeliverable)
        )
    }

    fn effect_checks(&self) -> Vec<Check> {
        let orders: Vec<&OrderCount> = self.counts.orders.values().collect();
        let sum = |f: fn(&OrderCount) -> usize| orders.iter().map(|o| f(o)).sum::<usize>();
        let count = |f: fn(&OrderCount) -> bool| orders.iter().filter(|o| f(o)).count();
        let paid = count(OrderCount::charged);
        let refunded = count(|o| o.status.as_deref() == Some("refunded"));
        let shipped = count(OrderCount::shipped);
        vec![
            Check::new(
                "charges (succeeded PaymentIntents at the fake Stripe), one per paid order",
                paid,
                sum(|o| o.charges),
                count(|o| o.charges != usize::from(o.charged())) == 0,
            ),
            Check::none("orders charged twice", count(|o| o.charges > 1)),
            Check::new(
                "PaymentIntents created (declined ones included)",
                "-",
                sum(|o| o.intents),
                true,
            ),
            Check::new(
                "refunds at the fake Stripe, one per refunded order",
                refunded,
                sum(|o| o.refunds),
                count(|o| o.refunds != usize::from(o.status.as_deref() == Some("refunded"))) == 0,
            ),
            Check::new(
                "shipments at the partner simulator, one per shipped order",
                shipped,
                sum(|o| usize::try_from(o.shipments).unwrap_or(0)),
                count(|o| o.shipments != i64::from(o.shipped())) == 0,
            ),
            Check::none("orders shipped twice", count(|o| o.shipments > 1)),
        ]
    }

    fn mail_checks(&self) -> Vec<Check> {
        let mails: Vec<&Mail> = self.counts.orders.values().flat_map(|o| &o.mails).collect();
        let missing = mails.iter().filter(|m| m.copies.is_empty()).count();
        let repeats = self.repeats();
        let explained = repeats.iter().filter(|r| r.explained()).count();
        vec![
            Check::new(
                "e-mails in the SMTP sink, one per event that gets one",
                mails.len(),
                mails.len() - missing,
                missing == 0,
            ),
            Check::new(
                "e-mails received in all (copies included)",
                "-",
                self.counts.mails_received,
                true,
            ),
            Check::new(
                "e-mails repeated, a kill of email-service in their window",
                "allowed",
                explained,
                true,
            ),
            Check::none(
                "e-mails repeated without a kill in their window",
                repeats.len() - explained,
            ),
            Check::none("e-mails for no event of the run", self.counts.foreign_mails),
        ]
    }

    fn stock_checks(&self) -> Vec<Check> {
        let off = self
            .counts
            .stock
            .iter()
            .filter(|(_, expected, found)| expected != found)
            .count();
        let parked: Vec<String> = self
            .counts
            .parked
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(queue, n)| format!("{n} in the {queue}"))
            .collect();
        let exited = self
            .counts
            .exited
            .as_ref()
            .map_or("none".to_owned(), |(name, status)| {
                format!("{name} ({status})")
            });
        vec![
            Check::new(
                "products whose stock is not start − shipped quantities",
                0,
                off,
                off == 0,
            ),
            Check::new(
                "messages parked in the dead-letter queues",
                0,
                if parked.is_empty() {
                    "0".to_owned()
                } else {
                    parked.join(", ")
                },
                parked.is_empty(),
            ),
            Check::new(
                "processes that exited on their own",
                "none",
                &exited,
                self.counts.exited.is_none(),
            ),
        ]
    }

    /// Every `Message-ID` received more than once, with the faults in its window.
    fn repeats(&self) -> Vec<Repeat<'_>> {
        let mut repeats = Vec::new();
        for (order, count) in &self.counts.orders {
            for mail in count.mails.iter().filter(|m| m.copies.len() > 1) {
                repeats.push(Repeat {
                    order: *order,
                    mail,
                    faults: faults_in_window(self.runs, &mail.copies),
                });
            }
        }
        repeats
    }

    fn repeats_list(&self, out: &mut String) {
        let repeats = self.repeats();
        if repeats.is_empty() {
            return;
        }
        let _ = writeln!(out, "\nRepeated e-mails:\n");
        for repeat in repeats {
            let arrivals: Vec<String> = repeat
                .mail
                .copies
                .iter()
                .map(|at| format!("{:.1} s", seconds_between(self.started, *at)))
                .collect();
            let faults: Vec<String> = repeat
                .faults
                .iter()
                .map(|f| {
                    format!(
                        "{} at {:.1} s",
                        f.fault.name(),
                        seconds_between(self.started, f.start)
                    )
                })
                .collect();
            let why = match (repeat.explained(), faults.is_empty()) {
                (true, _) => format!("explained: {}", faults.join(", ")),
                (false, true) => "NOT explained: no fault in its window".to_owned(),
                (false, false) => format!("NOT explained by a kill: {}", faults.join(", ")),
            };
            let _ = writeln!(
                out,
                "- `{}` ({} of order {}): {} copies at {}; {why}",
                repeat.mail.message_id,
                repeat.mail.event_type,
                repeat.order,
                repeat.mail.copies.len(),
                arrivals.join(", "),
            );
        }
    }
}

/// The faults in the window of an e-mail that arrived at `copies` (sorted, two or more): a kill
/// whose moment falls in it, or another fault that overlaps it.
fn faults_in_window(runs: &[FaultRun], copies: &[SystemTime]) -> Vec<FaultRun> {
    let (Some(first), Some(last)) = (copies.first(), copies.last()) else {
        return Vec::new();
    };
    let opens = |at: SystemTime| seconds_between(*first, at) >= -WINDOW_BEFORE_S;
    runs.iter()
        .filter(|run| match run.fault {
            Fault::Kill(_) => opens(run.start) && run.start <= *last,
            _ => opens(run.end) && run.start <= *last,
        })
        .copied()
        .collect()
}

/// From the fault's end until the last order of its backlog settled (`-` without a backlog).
fn recovery(backlog: &[&OrderCount], end: SystemTime) -> String {
    if backlog.is_empty() {
        return "-".to_owned();
    }
    if !backlog.iter().all(|o| o.ended()) {
        return "not settled".to_owned();
    }
    let last = backlog.iter().filter_map(|o| o.settled_at).max();
    last.map_or("-".to_owned(), |at| {
        format!("{:.1}", seconds_between(end, at).max(0.0))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(s: f64) -> SystemTime {
        T0 + Duration::from_secs_f64(s)
    }

    fn run(fault: Fault, start: f64, end: f64) -> FaultRun {
        FaultRun {
            fault,
            start: at(start),
            end: at(end),
        }
    }

    fn settled(status: &str, s: f64) -> OrderCount {
        OrderCount {
            status: Some(status.to_owned()),
            settled_at: Some(at(s)),
            ..OrderCount::default()
        }
    }

    #[test]
    fn a_repeat_is_explained_only_by_a_kill_of_the_email_service_inside_its_window() {
        let runs = [
            run(Fault::Kill("email-service"), 10.0, 11.0),
            run(Fault::RestartPostgres, 20.0, 20.5),
        ];
        let window = |first, last| faults_in_window(&runs, &[at(first), at(last)]);
        assert_eq!(window(10.5, 16.0).len(), 1, "killed after the first copy");
        assert_eq!(window(10.8, 16.0).len(), 1, "the mail file's time may lag");
        assert!(
            window(12.0, 16.0).is_empty(),
            "killed before the send began"
        );
        assert!(window(2.0, 9.0).is_empty(), "killed after the last copy");
        let restart = window(20.2, 30.0);
        assert_eq!(restart.len(), 1);
        assert_eq!(restart[0].fault, Fault::RestartPostgres);
    }

    #[test]
    fn recovery_is_from_the_fault_end_to_the_last_settled_order_of_its_backlog() {
        let (a, b) = (settled("shipped", 12.0), settled("refunded", 17.5));
        assert_eq!(recovery(&[&a, &b], at(10.0)), "7.5");
        assert_eq!(recovery(&[&a], at(15.0)), "0.0", "settled before the end");
        assert_eq!(recovery(&[], at(10.0)), "-");
        let open = settled("paid", 12.0);
        assert_eq!(recovery(&[&a, &open], at(10.0)), "not settled");
    }
}
