//! Sending over SMTP with lettre, and sorting the server's answer: accepted, refused for good
//! (a 5xx for the recipient: record it, do not loop) or worth retrying (server down, 4xx,
//! timeout).
//!
//! SMTP servers quote the recipient in their answers (`550 5.1.1 <ada@example.com>: Recipient
//! address rejected`). Every answer kept or logged here goes through [`scrub`], which replaces
//! each word holding an `@` with `<…>`, and a transient failure carries that scrubbed text
//! ([`SmtpFailure`]) instead of lettre's error, whose text would quote the address again.

use lettre::{
    Message,
    message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType},
};
use settings::SmtpSettings;

use crate::{
    smtp::{SendError, SmtpPool},
    templates::RenderedEmail,
};

/// Why an e-mail could not be built or handed over.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address does not parse.
    #[error("invalid e-mail address")]
    Address(#[from] lettre::address::AddressError),
    /// The message could not be assembled.
    #[error("the e-mail could not be built")]
    Build(#[from] lettre::error::Error),
    /// The TLS set-up for STARTTLS is invalid.
    #[error("invalid SMTP TLS settings")]
    Tls(#[source] lettre::transport::smtp::Error),
    /// The SMTP conversation failed in a way that may pass (server down, 4xx, timeout).
    #[error("SMTP delivery failed for now")]
    Transient(#[source] SmtpFailure),
}

/// What went wrong in an SMTP conversation, scrubbed of e-mail addresses (see the module
/// documentation). It has no `source`: lettre's error, which it was made from, would print the
/// server's answer with the recipient in it, so it is dropped on purpose.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SmtpFailure(String);

impl SmtpFailure {
    fn of(error: &SendError) -> Self {
        let mut text = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        SmtpFailure(scrub(&text))
    }
}

/// `text` with every word that holds an `@` (an address, bare or in `<…>`) replaced by `<…>`.
pub fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|word| if word.contains('@') { "<…>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The server's final answer to an e-mail it was handed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Accepted (2xx), with the server's reply ([`scrub`]bed).
    Accepted(String),
    /// Refused for good (5xx), with the server's reply ([`scrub`]bed).
    Rejected(String),
}

/// An e-mail ready to send.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The recipient's name.
    pub to_name: &'a str,
    /// The recipient's address.
    pub to_email: &'a str,
    /// Subject, HTML and text.
    pub content: RenderedEmail,
    /// The `Message-ID`, with its angle brackets.
    pub message_id: String,
    /// An optional PDF attachment: file name and bytes.
    pub pdf: Option<(String, Vec<u8>)>,
}

/// An SMTP client with a connection pool.
#[derive(Clone)]
pub struct Mailer {
    pool: std::sync::Arc<SmtpPool>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.email.to_string())
            .finish()
    }
}

impl Mailer {
    /// A mailer for the configured server. Nothing is connected until the first send.
    ///
    /// # Errors
    /// [`MailError`] when the `From` address or the TLS set-up is invalid.
    pub fn new(settings: &SmtpSettings) -> Result<Self, MailError> {
        Ok(Mailer {
            pool: std::sync::Arc::new(SmtpPool::new(settings).map_err(MailError::Tls)?),
            from: settings.from.parse()?,
        })
    }

    /// The domain of the `From` address, used to build `Message-ID`s.
    pub fn domain(&self) -> &str {
        self.from.email.domain()
    }

    /// Sends one e-mail and sorts the answer.
    ///
    /// # Errors
    /// [`MailError::Transient`] when it may pass on a later try; [`MailError::Address`] or
    /// [`MailError::Build`] when the e-mail itself is wrong.
    pub async fn send(&self, email: Outgoing<'_>) -> Result<Delivery, MailError> {
        let message = self.build(email)?;
        match self
            .pool
            .send(message.envelope(), &message.formatted())
            .await
        {
            Ok(response) => Ok(Delivery::Accepted(reply(
                response.code().to_string(),
                response.message(),
            ))),
            Err(e) if e.is_permanent() => Ok(Delivery::Rejected(SmtpFailure::of(&e).0)),
            Err(e) => Err(MailError::Transient(SmtpFailure::of(&e))),
        }
    }

    fn build(&self, email: Outgoing<'_>) -> Result<Message, MailError> {
        let to = Mailbox::new(Some(email.to_name.to_owned()), email.to_email.parse()?);
        let body = MultiPart::alternative_plain_html(email.content.text, email.content.html);
        let body = match email.pdf {
            None => body,
            Some((name, bytes)) => MultiPart::mixed()
                .multipart(body)
                .singlepart(pdf_part(name, bytes)),
        };
        Ok(Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.content.subject)
            .message_id(Some(email.message_id))
            .multipart(body)?)
    }
}

fn pdf_part(name: String, bytes: Vec<u8>) -> SinglePart {
    let pdf = ContentType::parse("application/pdf").expect("a valid content type");
    Attachment::new(name).body(bytes, pdf)
}

fn reply<'a>(code: String, lines: impl Iterator<Item = &'a str>) -> String {
    let text: Vec<&str> = lines.collect();
    scrub(&format!("{code} {}", text.join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_a_server_answer_are_scrubbed_and_the_rest_kept() {
        assert_eq!(
            scrub("550 5.1.1 <ada@example.com>: Recipient address rejected"),
            "550 5.1.1 <…> Recipient address rejected"
        );
        assert_eq!(
            scrub("250 2.0.0 Ok: queued as 4F2A1"),
            "250 2.0.0 Ok: queued as 4F2A1"
        );
        assert_eq!(scrub("to=ada@example.com, dsn=4.2.2"), "<…> dsn=4.2.2");
    }
}
