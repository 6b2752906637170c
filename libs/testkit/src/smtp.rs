//! A private SMTP sink per test (`scripts/smtp_sink.py` on a free port, writing a Maildir), and
//! a reader that parses what it received. The sink's recipient switches (`bounce*`, `greylist*`,
//! `hold*` local parts) are described in the script.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use mail_parser::MimeHeaders;

use crate::{TestResult, free_port, require_env};

/// The sink script, from the repository.
const SINK_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/smtp_sink.py");

/// One e-mail the sink received, parsed.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The `Message-ID` without angle brackets.
    pub message_id: String,
    /// The first `To` address.
    pub to: String,
    /// The subject.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
    /// Attachments: file name, content type and bytes.
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// When the sink stored it (its Maildir file's modification time).
    pub received_at: SystemTime,
}

/// A running sink, killed (by process id) when dropped.
pub struct SmtpSink {
    port: u16,
    maildir: PathBuf,
    child: Option<Child>,
}

impl SmtpSink {
    /// Starts a sink on a free port with an empty Maildir.
    ///
    /// # Errors
    /// When it does not accept connections within 10 s.
    pub async fn start() -> TestResult<Self> {
        let maildir =
            std::env::temp_dir().join(format!("cf-mail-{}", uuid::Uuid::new_v4().simple()));
        let mut sink = SmtpSink {
            port: free_port(),
            maildir,
            child: None,
        };
        sink.resume().await?;
        Ok(sink)
    }

    /// The process id of the running sink; `None` while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops it like a crash (SIGKILL); the Maildir stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and Maildir.
    ///
    /// # Errors
    /// When it does not accept connections within 10 s.
    pub async fn resume(&mut self) -> TestResult<()> {
        let venv = require_env("CHARGEFLOW_VENV");
        let log =
            std::fs::File::create(std::env::temp_dir().join(format!("cf-smtp-{}.log", self.port)))?;
        let child = Command::new(format!("{venv}/bin/python"))
            .arg(SINK_SCRIPT)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--maildir")
            .arg(&self.maildir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("the SMTP sink on port {} did not start", self.port).into())
    }

    /// Lets the sink answer the e-mails to `hold*@…` addresses: it stores each at once but holds
    /// its `250` answer until this is called (at most 60 s), and answers at once afterwards.
    ///
    /// # Errors
    /// When the release file cannot be written into the Maildir.
    pub fn release_held(&self) -> TestResult<()> {
        std::fs::write(self.maildir.join("release"), b"")?;
        Ok(())
    }

    /// Every e-mail received so far, parsed.
    ///
    /// # Errors
    /// When the Maildir cannot be read or a message does not parse.
    pub fn messages(&self) -> TestResult<Vec<ReceivedMail>> {
        let mut mails = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.maildir.join(sub);
            if !dir.exists() {
                continue;
            }
            for entry in std::fs::read_dir(dir)? {
                mails.push(parse(&entry?.path())?);
            }
        }
        Ok(mails)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

fn parse(path: &Path) -> TestResult<ReceivedMail> {
    let raw = std::fs::read(path)?;
    let received_at = std::fs::metadata(path)?.modified()?;
    let message = mail_parser::MessageParser::default()
        .parse(&raw)
        .ok_or_else(|| format!("unparsable e-mail {}", path.display()))?;
    let to = message
        .to()
        .and_then(|to| to.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    let attachments = message
        .attachments()
        .map(|part| {
            let name = part.attachment_name().unwrap_or_default().to_owned();
            let content_type = part
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or_default()))
                .unwrap_or_default();
            (name, content_type, part.contents().to_vec())
        })
        .collect();
    Ok(ReceivedMail {
        message_id: message.message_id().unwrap_or_default().to_owned(),
        to,
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        attachments,
        received_at,
    })
}
