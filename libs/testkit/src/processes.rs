//! The workspace's real binaries as separate processes (the benchmark report, the soak, the trace
//! test): started with the given environment, logging to files if asked, stopped by process id
//! (SIGTERM, then SIGKILL after 10 s) when stopped or dropped, with each one's peak RSS. One of
//! them can be killed like a crash (SIGKILL) and started again with the same environment.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::TestResult;

/// The processes of the pipeline, in start order.
pub const PIPELINE: [&str; 6] = [
    "web-server",
    "outbox-relay",
    "invoice-service",
    "billing-service",
    "shipping-service",
    "email-service",
];

/// Running processes, stopped by process id when dropped.
pub struct Processes {
    children: Vec<(String, Child)>,
    bin_dir: PathBuf,
    env: Vec<(String, String)>,
    /// Each process's own settings on top of `env` (see [`Processes::start_with`]).
    own: Vec<(String, Vec<(String, String)>)>,
    log_dir: Option<PathBuf>,
}

impl Processes {
    /// Starts `names` from `bin_dir` with `env` on top of the inherited environment; with
    /// `log_dir`, each one's stdout and stderr go to `<log_dir>/<name>.log`.
    ///
    /// # Errors
    /// When a binary is missing (build it first) or cannot start.
    pub fn start(
        bin_dir: &Path,
        names: &[&str],
        env: &[(String, String)],
        log_dir: Option<&Path>,
    ) -> TestResult<Self> {
        Self::start_with(bin_dir, names, env, log_dir, |_| Vec::new())
    }

    /// Like [`Processes::start`], each process also getting `own(name)` on top of `env` (its
    /// own metrics port, for instance).
    ///
    /// # Errors
    /// When a binary is missing (build it first) or cannot start.
    pub fn start_with(
        bin_dir: &Path,
        names: &[&str],
        env: &[(String, String)],
        log_dir: Option<&Path>,
        own: impl Fn(&str) -> Vec<(String, String)>,
    ) -> TestResult<Self> {
        let mut processes = Processes {
            children: Vec::new(),
            bin_dir: bin_dir.to_path_buf(),
            env: env.to_vec(),
            own: names.iter().map(|n| ((*n).to_owned(), own(n))).collect(),
            log_dir: log_dir.map(Path::to_path_buf),
        };
        for name in names {
            let child = processes.spawn(name, false)?;
            processes.children.push(((*name).to_owned(), child));
        }
        Ok(processes)
    }

    /// Each running process's name and process id, in start order.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect()
    }

    /// Kills the running process `name` with SIGKILL (`kill -9`: no shutdown, nothing flushed)
    /// and reaps it; [`Processes::restart`] starts it again.
    ///
    /// # Errors
    /// When no process of that name is running here.
    pub fn kill(&mut self, name: &str) -> TestResult<()> {
        let at = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .ok_or_else(|| format!("{name} is not running"))?;
        let (_, mut child) = self.children.remove(at);
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts `name` again with the environment of [`Processes::start`]; its log, if any, is
    /// appended to.
    ///
    /// # Errors
    /// When the binary is missing or cannot start.
    pub fn restart(&mut self, name: &str) -> TestResult<()> {
        let child = self.spawn(name, true)?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    fn spawn(&self, name: &str, append: bool) -> TestResult<Child> {
        let path = self.bin_dir.join(name);
        if !path.exists() {
            return Err(format!(
                "{} is missing: build the binaries first (cargo build --bins)",
                path.display()
            )
            .into());
        }
        let mut command = Command::new(&path);
        command
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(
                self.own
                    .iter()
                    .filter(|(n, _)| n == name)
                    .flat_map(|(_, own)| own.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            )
            .stdin(Stdio::null());
        if let Some(dir) = &self.log_dir {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(append)
                .truncate(!append)
                .open(dir.join(format!("{name}.log")))?;
            command.stdout(log.try_clone()?).stderr(log);
        }
        Ok(command.spawn()?)
    }

    /// The first process that has already exited, with its exit status.
    pub fn exited(&mut self) -> Option<(String, std::process::ExitStatus)> {
        self.children.iter_mut().find_map(|(name, child)| {
            let status = child.try_wait().ok().flatten()?;
            Some((name.clone(), status))
        })
    }

    /// Reads each process's peak RSS (KiB), then stops them all.
    pub fn stop(&mut self) -> Vec<(String, u64)> {
        let rss = self
            .children
            .iter()
            .map(|(name, child)| (name.clone(), peak_rss_kib(child.id())))
            .collect();
        for (_, child) in &self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for (_, child) in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
        rss
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, …) to process `pid`, a PostgreSQL backend for instance
/// (`kill`); panics when it cannot be sent.
pub fn signal(pid: i32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {signal} {pid}");
}

/// Where cargo put the workspace's binaries: the folder of this executable (`target/<profile>/`),
/// or its parent when this is a test binary in `deps/`.
pub fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    }
}

/// `VmHWM` (peak resident set) of a running process, in KiB; 0 when unreadable.
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
