//! The log lines of a real process (the simulator's binary, which logs through
//! `telemetry::init` like every ChargeFlow process) when its stdout is a pipe, as when a log file
//! or a collector reads it: plain text, or JSON objects with `LOG_FORMAT=json`.

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
};

/// Starts the simulator on a free loopback port with `env`, returns its first log lines up to
/// and including the one that says it listens, and stops it by its process id.
fn first_lines(env: &[(&str, &str)]) -> Vec<String> {
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_partner-sim"))
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("LOG_FORMAT")
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("partner-sim starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a log line");
        let listening = line.contains("partner-sim listening");
        lines.push(line);
        if listening {
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("SIGTERM");
    child.wait().expect("exit");
    lines
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let lines = first_lines(&[]);
    assert!(lines.len() >= 2, "the start and listening lines: {lines:?}");
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "an ANSI escape in {line:?}");
    }
    assert!(lines.iter().any(|l| l.contains("INFO")));
}

#[test]
fn with_log_format_json_every_line_is_one_json_object() {
    let lines = first_lines(&[("LOG_FORMAT", "json")]);
    assert!(lines.len() >= 2, "the start and listening lines: {lines:?}");
    for line in &lines {
        let object: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(object["level"], "INFO");
        assert!(object["message"].is_string());
    }
}
