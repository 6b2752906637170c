//! Where the CPU goes: each process's CPU time (user + system) over the load window, read from
//! `/proc/<pid>/stat` (with the `procfs` crate) before and after the load.
//!
//! A process watched as a [`Scope::Tree`] counts with everything it started: its own time, the
//! time of the children it has waited for (`cutime` + `cstime`), and the same of each child still
//! running. So PostgreSQL is the postmaster and every backend, also the backends that exited
//! during the window (their time moves into the postmaster's children times when it reaps them),
//! and a backend that lived through the window counts only its time inside it. The bench itself is
//! watched as [`Scope::Own`]: its children are the processes measured here.

use std::collections::HashMap;

use procfs::process::all_processes;

/// What a watched process's time includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Its own threads only.
    Own,
    /// Itself and every descendant, living or exited and reaped.
    Tree,
}

/// Who a process is, for the subtotals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Our binaries: the web-server, the relay, the workers.
    Ours,
    /// The services they use (and their stand-ins).
    Service,
    /// The benchmark itself: the load generator and the observer.
    Bench,
}

/// One process to measure.
#[derive(Debug, Clone)]
pub struct Watched {
    pub name: String,
    pub group: Group,
    /// `None` when it could not be found (its row says so).
    pub pid: Option<u32>,
    pub scope: Scope,
}

impl Watched {
    pub fn new(name: &str, group: Group, pid: Option<u32>, scope: Scope) -> Self {
        Watched {
            name: name.to_owned(),
            group,
            pid,
            scope,
        }
    }
}

/// Clock ticks of each watched process at one moment (same order; `None`: not readable).
pub struct Sample(Vec<Option<u64>>);

/// One process's own and reaped children's ticks, and its parent.
struct Entry {
    parent: u32,
    own: u64,
    reaped: u64,
}

/// Reads every watched process's ticks now.
pub fn sample(watched: &[Watched]) -> Sample {
    let table = process_table();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, entry) in &table {
        children.entry(entry.parent).or_default().push(*pid);
    }
    Sample(
        watched
            .iter()
            .map(|w| {
                let pid = w.pid?;
                let entry = table.get(&pid)?;
                Some(match w.scope {
                    Scope::Own => entry.own,
                    Scope::Tree => tree(&table, &children, pid),
                })
            })
            .collect(),
    )
}

/// Every process's ticks, by pid (processes that vanish while being read are left out).
fn process_table() -> HashMap<u32, Entry> {
    let Ok(processes) = all_processes() else {
        return HashMap::new();
    };
    processes
        .filter_map(|p| p.ok()?.stat().ok())
        .map(|s| {
            let entry = Entry {
                parent: s.ppid.max(0) as u32,
                own: s.utime + s.stime,
                reaped: (s.cutime + s.cstime).max(0) as u64,
            };
            (s.pid.max(0) as u32, entry)
        })
        .collect()
}

fn tree(table: &HashMap<u32, Entry>, children: &HashMap<u32, Vec<u32>>, pid: u32) -> u64 {
    let Some(entry) = table.get(&pid) else {
        return 0;
    };
    let below: u64 = children
        .get(&pid)
        .map(|kids| kids.iter().map(|kid| tree(table, children, *kid)).sum())
        .unwrap_or(0);
    entry.own + entry.reaped + below
}

/// CPU seconds of each watched process between two samples (`None` when either is missing).
pub fn seconds(before: &Sample, after: &Sample) -> Vec<Option<f64>> {
    let per_second = procfs::ticks_per_second().max(1) as f64;
    before
        .0
        .iter()
        .zip(&after.0)
        .map(|(b, a)| Some(a.as_ref()?.saturating_sub(*b.as_ref()?) as f64 / per_second))
        .collect()
}

/// The CPU table: seconds in the window and milliseconds per order, per process and per group.
pub fn markdown(watched: &[Watched], seconds: &[Option<f64>], orders: usize) -> String {
    let per_order = |s: f64| 1000.0 * s / orders.max(1) as f64;
    let mut out =
        String::from("| process | CPU s in window | CPU ms / order |\n| --- | ---: | ---: |\n");
    for (w, s) in watched.iter().zip(seconds) {
        let row = match s {
            Some(s) => format!("| `{}` | {s:.2} | {:.2} |\n", w.name, per_order(*s)),
            None => format!("| `{}` | not found | – |\n", w.name),
        };
        out.push_str(&row);
    }
    for (group, label) in [
        (Group::Ours, "ours, together"),
        (Group::Service, "services, together"),
    ] {
        let s = total(watched, seconds, Some(group));
        out.push_str(&format!("| {label} | {s:.2} | {:.2} |\n", per_order(s)));
    }
    let s = total(watched, seconds, None);
    out.push_str(&format!("| everything | {s:.2} | {:.2} |\n", per_order(s)));
    out
}

/// Seconds of one group (all processes with `None`).
pub fn total(watched: &[Watched], seconds: &[Option<f64>], group: Option<Group>) -> f64 {
    watched
        .iter()
        .zip(seconds)
        .filter(|(w, _)| group.is_none_or(|g| w.group == g))
        .filter_map(|(_, s)| *s)
        .sum()
}

/// Seconds of the process called `name`, if it was measured.
pub fn of(watched: &[Watched], seconds: &[Option<f64>], name: &str) -> Option<f64> {
    watched
        .iter()
        .zip(seconds)
        .find(|(w, _)| w.name == name)
        .and_then(|(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_tree_counts_itself_its_reaped_children_and_its_living_ones() {
        let entry = |parent, own, reaped| Entry {
            parent,
            own,
            reaped,
        };
        let table = HashMap::from([
            (10, entry(1, 5, 7)),
            (11, entry(10, 3, 0)),
            (12, entry(11, 2, 1)),
            (20, entry(1, 100, 0)),
        ]);
        let children = HashMap::from([(1, vec![10, 20]), (10, vec![11]), (11, vec![12])]);
        assert_eq!(tree(&table, &children, 10), 5 + 7 + 3 + 2 + 1);
        assert_eq!(tree(&table, &children, 12), 3);
    }

    #[test]
    fn this_process_can_be_read_and_its_time_does_not_go_backwards() {
        let me = [Watched::new(
            "me",
            Group::Bench,
            Some(std::process::id()),
            Scope::Own,
        )];
        let before = sample(&me);
        let after = sample(&me);
        let s = seconds(&before, &after);
        assert!(matches!(s[0], Some(x) if x >= 0.0), "{s:?}");
    }
}
