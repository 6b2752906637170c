//! SMTP connections for the mailer: lettre's SMTP client on sockets opened here, with
//! `TCP_NODELAY`, kept open in a small pool.
//!
//! Why not lettre's own pooled transport: lettre 0.11.23 opens its sockets with Nagle's algorithm
//! on, and writes a message's body and its closing `.` as two writes before it waits for the
//! answer. The `.` then waits for the server's delayed ACK — 40 ms on Linux — on every e-mail:
//! 44 ms per message against the local sink instead of 0.4 ms, which held one worker to ~20
//! e-mails per second per connection. (Fixed upstream after 0.11.23, not released yet.)
//!
//! Each send has one deadline for the whole conversation (connect, TLS, AUTH and the e-mail).
//! A connection that failed in any way is closed, never reused; one that sat idle for a while is
//! checked with `NOOP` before it is used again.

use std::time::{Duration, Instant};

use lettre::{
    address::Envelope,
    transport::smtp::{
        authentication::{Credentials, Mechanism},
        client::{AsyncSmtpConnection, TlsParameters},
        extension::ClientId,
        response::Response,
    },
};
use secrecy::ExposeSecret;
use settings::SmtpSettings;
use tokio::{net::TcpStream, sync::Mutex};

/// A connection idle for longer is checked with `NOOP` before it carries an e-mail.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Why an e-mail was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The server answered with an error, or the conversation broke off.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The server could not be reached.
    #[error("could not connect to the SMTP server")]
    Connect(#[source] std::io::Error),
    /// The conversation did not finish within the timeout.
    #[error("the SMTP conversation timed out after {0:?}")]
    TimedOut(Duration),
}

impl SendError {
    /// A refusal for good (a 5xx answer), not worth another try.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Smtp(e) if e.is_permanent())
    }
}

/// A pool of SMTP connections to one server.
pub struct SmtpPool {
    host: String,
    port: u16,
    timeout: Duration,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// Open connections kept for reuse: at most `smtp.in_flight`, one per e-mail sent at once.
    max_idle: usize,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
}

impl std::fmt::Debug for SmtpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpPool")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpPool {
    /// A pool for the configured server; nothing is connected until the first send.
    ///
    /// # Errors
    /// When the TLS parameters for STARTTLS cannot be built.
    pub fn new(settings: &SmtpSettings) -> Result<Self, lettre::transport::smtp::Error> {
        let tls = if settings.starttls {
            Some(TlsParameters::new(settings.host.clone())?)
        } else {
            None
        };
        let credentials = (!settings.username.is_empty()).then(|| {
            Credentials::new(
                settings.username.clone(),
                settings.password.expose_secret().to_owned(),
            )
        });
        Ok(SmtpPool {
            host: settings.host.clone(),
            port: settings.port,
            timeout: Duration::from_millis(settings.timeout_ms),
            tls,
            credentials,
            hello: ClientId::default(),
            max_idle: settings.in_flight,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Hands one e-mail (`message`: its formatted bytes) to the server.
    ///
    /// # Errors
    /// [`SendError`]: the server's refusal, a failed connection, or the timeout.
    #[tracing::instrument(level = "debug", name = "smtp.send", skip_all, fields(otel.kind = "client", peer.service = "smtp"))]
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<Response, SendError> {
        tokio::time::timeout(self.timeout, self.send_on_a_connection(envelope, message))
            .await
            .map_err(|_| SendError::TimedOut(self.timeout))?
    }

    async fn send_on_a_connection(
        &self,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, SendError> {
        let mut connection = match self.reuse().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let answer = connection.send(envelope, message).await;
        // lettre marks the connection broken after any error; only sound ones go back.
        if !connection.has_broken() {
            let mut idle = self.idle.lock().await;
            if idle.len() < self.max_idle {
                idle.push((connection, Instant::now()));
            }
        }
        Ok(answer?)
    }

    /// An idle connection that still answers, if there is one.
    async fn reuse(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let (mut connection, since) = self.idle.lock().await.pop()?;
            if since.elapsed() < CHECK_AFTER_IDLE || connection.test_connected().await {
                return Some(connection);
            }
            connection.abort().await;
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let socket = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(SendError::Connect)?;
        socket.set_nodelay(true).map_err(SendError::Connect)?;
        let mut connection =
            AsyncSmtpConnection::connect_with_transport(Box::new(socket), &self.hello).await?;
        if let Some(tls) = &self.tls {
            connection.starttls(tls.clone(), &self.hello).await?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await?;
        }
        Ok(connection)
    }
}
