//! Customer e-mail templates: loading, start-up checks and rendering.
//!
//! Each [`EmailKind`] has three Handlebars files in the templates directory:
//! `<kind>.subject.hbs`, `<kind>.html.hbs` and `<kind>.txt.hbs`, plus shared partials in
//! `partials/` (`lines` and `footer`, each as `.html.hbs` and `.txt.hbs`). The order e-mails
//! ([`EmailKind::ORDER`]) render an [`EmailContext`]; the sign-in e-mail, which belongs to no
//! order, renders a [`SignInContext`].
//!
//! Why it is built this way:
//!
//! - **Templates live in files**, not in Rust strings, so wording and layout can be changed
//!   and reviewed without touching code.
//! - **Everything is compiled and test-rendered at start-up.** [`Templates::load`] compiles
//!   every file and renders every kind twice, once with [`EmailContext::sample`] (every field
//!   filled) and once with all optional fields empty. The registries run in strict mode, so a
//!   misspelt field is an error rather than an empty string. A broken template therefore stops
//!   the worker at start-up, where it is seen at once, instead of failing (or sending a
//!   half-empty e-mail) when a customer's order event arrives.
//! - **Optional fields are guarded with `{{#if}}`** in the templates. The `if` and `unless`
//!   helpers are replaced by strict versions: the built-ins accept an unknown field even in
//!   strict mode (it is simply falsy), which would silently hide a block forever.
//! - **HTML is escaped, text is not.** The HTML registry keeps Handlebars' default HTML
//!   escaping, so a customer name like `<script>` is shown, never run. The text registry uses
//!   no escaping, so the plain-text part shows names as typed (`O'Brien`, not `O&#x27;Brien`).
//!   Subjects are rendered with the text registry, then trimmed and stripped of line breaks
//!   so no value can inject a mail header.
//! - **No card data can reach a template:** [`EmailContext`] has no field for it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonTruthy, Output, RenderContext,
    RenderErrorReason, Renderable,
};
use serde::Serialize;

/// The e-mails the worker sends: one per order event, and the sign-in link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmailKind {
    /// The order was placed.
    OrderConfirmation,
    /// The invoice was issued; its PDF is attached.
    Invoice,
    /// The payment succeeded.
    PaymentReceipt,
    /// The payment was declined; nothing was charged and the items were released.
    PaymentFailed,
    /// The payment waits for the shopper to confirm it (3-D Secure) on the order page.
    PaymentActionRequired,
    /// The order left the warehouse.
    Shipped,
    /// Money was paid back.
    Refunded,
    /// The order was cancelled (by the shopper, the shop or the expiry).
    Cancelled,
    /// The parcel was delivered.
    Delivered,
    /// A one-time sign-in link ("find my orders"); rendered with a [`SignInContext`].
    SignIn,
}

impl EmailKind {
    /// The e-mails about an order, rendered with an [`EmailContext`], in a fixed order.
    pub const ORDER: [EmailKind; 9] = [
        EmailKind::OrderConfirmation,
        EmailKind::Invoice,
        EmailKind::PaymentReceipt,
        EmailKind::PaymentFailed,
        EmailKind::PaymentActionRequired,
        EmailKind::Shipped,
        EmailKind::Refunded,
        EmailKind::Cancelled,
        EmailKind::Delivered,
    ];

    /// Every kind, in a fixed order: the order e-mails ([`EmailKind::ORDER`]), then the sign-in
    /// e-mail.
    pub const ALL: [EmailKind; 10] = {
        let mut all = [EmailKind::SignIn; 10];
        let mut i = 0;
        while i < Self::ORDER.len() {
            all[i] = Self::ORDER[i];
            i += 1;
        }
        all
    };

    /// The kind's snake_case name, which is also the stem of its template files.
    pub fn name(self) -> &'static str {
        match self {
            EmailKind::OrderConfirmation => "order_confirmation",
            EmailKind::Invoice => "invoice",
            EmailKind::PaymentReceipt => "payment_receipt",
            EmailKind::PaymentFailed => "payment_failed",
            EmailKind::PaymentActionRequired => "payment_action_required",
            EmailKind::Shipped => "shipped",
            EmailKind::Refunded => "refunded",
            EmailKind::Cancelled => "cancelled",
            EmailKind::Delivered => "delivered",
            EmailKind::SignIn => "sign_in",
        }
    }
}

/// One line of the order, with money already formatted for display.
#[derive(Debug, Clone, Serialize)]
pub struct EmailLine {
    /// The product's stock-keeping unit.
    pub sku: String,
    /// The product's display name.
    pub name: String,
    /// How many were ordered.
    pub quantity: u32,
    /// The price of one item, e.g. `"12.50 EUR"`.
    pub unit_price: String,
    /// `quantity` × `unit_price`, e.g. `"25.00 EUR"`.
    pub line_total: String,
}

/// Everything a template may show. Holds no payment-method or card data by construction.
#[derive(Debug, Clone, Serialize)]
pub struct EmailContext {
    /// The shop's name, shown in the header and footer.
    pub shop_name: String,
    /// The customer's name, as entered at checkout.
    pub customer_name: String,
    /// The order's full UUID.
    pub order_id: String,
    /// The short form of the order id shown to humans, e.g. `"K3M9Q-2XW7A"`.
    pub order_reference: String,
    /// A link to the order page that works on any device: it carries a signed, expiring token
    /// (`?t=`, see `domain::links`).
    pub order_url: String,
    /// The order's lines.
    pub lines: Vec<EmailLine>,
    /// The sum of the lines, pre-formatted, e.g. `"38.90 EUR"`.
    pub subtotal: String,
    /// The shipping fee, when known (quoted at checkout).
    pub shipping: Option<String>,
    /// The tax, when known (quoted at checkout).
    pub tax: Option<String>,
    /// The amount due including everything, when known.
    pub total: Option<String>,
    /// The invoice number, e.g. `"INV-2026-000123"` (invoice e-mails).
    pub invoice_number: Option<String>,
    /// The amount paid (receipt) or refunded (refund).
    pub amount: Option<String>,
    /// Why a payment was declined, or why a refund was made; shown as given.
    pub failure_reason: Option<String>,
    /// The shipping carrier's name.
    pub carrier: Option<String>,
    /// The carrier's tracking number.
    pub tracking_number: Option<String>,
    /// A link to the carrier's tracking page.
    pub tracking_url: Option<String>,
    /// Why the order was cancelled, in plain words (cancellation e-mails).
    pub cancellation: Option<String>,
    /// Whether a refund follows the cancellation (the order had been paid).
    pub refund_follows: bool,
    /// The day the parcel was delivered, e.g. `"3 December 2026"`.
    pub delivered_on: Option<String>,
}

impl EmailContext {
    /// A context with every field filled, used to check templates at start-up and in tests.
    pub fn sample() -> Self {
        let order_id = "7f3a9c21-5b8e-4d2a-9c61-0e4f8a2b7d13";
        EmailContext {
            shop_name: "ChargeFlow Coffee".to_owned(),
            customer_name: "Ada Lovelace".to_owned(),
            order_id: order_id.to_owned(),
            order_reference: "K3M9Q-2XW7A".to_owned(),
            order_url: format!(
                "https://shop.example.com/orders/{order_id}?t=1900000000.b5_tLZ2uNvd1kVn0PFwj3sSwJ2rZrCbiL4i7W5T0d0E"
            ),
            lines: vec![
                sample_line(
                    "COF-ETH-250",
                    "Ethiopia Yirgacheffe, 250 g",
                    2,
                    "12.50",
                    "25.00",
                ),
                sample_line("MUG-ENAMEL", "Enamel mug", 1, "13.90", "13.90"),
            ],
            subtotal: "38.90 EUR".to_owned(),
            shipping: Some("4.90 EUR".to_owned()),
            tax: Some("8.32 EUR".to_owned()),
            total: Some("52.12 EUR".to_owned()),
            invoice_number: Some("INV-2026-000123".to_owned()),
            amount: Some("52.12 EUR".to_owned()),
            failure_reason: Some("Insufficient funds".to_owned()),
            carrier: Some("DHL".to_owned()),
            tracking_number: Some("1Z999AA10123456784".to_owned()),
            tracking_url: Some("https://tracking.example.com/1Z999AA10123456784".to_owned()),
            cancellation: Some("you asked us to cancel it".to_owned()),
            refund_follows: true,
            delivered_on: Some("3 December 2026".to_owned()),
        }
    }

    /// The same context with every optional field empty.
    fn without_options(self) -> Self {
        EmailContext {
            shipping: None,
            tax: None,
            total: None,
            invoice_number: None,
            amount: None,
            failure_reason: None,
            carrier: None,
            tracking_number: None,
            tracking_url: None,
            cancellation: None,
            delivered_on: None,
            ..self
        }
    }
}

fn sample_line(sku: &str, name: &str, quantity: u32, unit: &str, total: &str) -> EmailLine {
    EmailLine {
        sku: sku.to_owned(),
        name: name.to_owned(),
        quantity,
        unit_price: format!("{unit} EUR"),
        line_total: format!("{total} EUR"),
    }
}

/// What the sign-in e-mail shows. It names no order and holds no token other than the link's.
#[derive(Debug, Clone, Serialize)]
pub struct SignInContext {
    /// The shop's name.
    pub shop_name: String,
    /// The name given at the address's latest checkout.
    pub customer_name: String,
    /// The one-time sign-in link (`<public_url>/sign-in?token=…`).
    pub sign_in_url: String,
    /// How long the link works, in minutes.
    pub valid_minutes: u64,
    /// Where to ask for a new link (`<public_url>/find-orders`).
    pub find_orders_url: String,
}

impl SignInContext {
    /// A filled-in context, used to check the templates at start-up and in tests.
    pub fn sample() -> Self {
        SignInContext {
            shop_name: "ChargeFlow Coffee".to_owned(),
            customer_name: "Ada Lovelace".to_owned(),
            sign_in_url: "https://shop.example.com/sign-in?token=7f3a9c21-5b8e-4d2a-9c61-0e4f8a2b7d13.b5_tLZ2uNvd1kVn0PFwj3sSwJ2rZrCbiL4i7W5T0d0E".to_owned(),
            valid_minutes: 15,
            find_orders_url: "https://shop.example.com/find-orders".to_owned(),
        }
    }
}

/// A rendered e-mail, ready to be put into a multipart/alternative message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// The subject: one line, trimmed, without control characters.
    pub subject: String,
    /// The HTML part, with every value HTML-escaped.
    pub html: String,
    /// The plain-text part, with values as they are.
    pub text: String,
}

/// Why templates could not be loaded or an e-mail could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A template file, or the partials directory, is missing or unreadable.
    #[error("e-mail template file `{}` cannot be read", .path.display())]
    Missing {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// A template does not compile.
    #[error("e-mail template `{name}` has a syntax error")]
    Syntax {
        /// The template's name, e.g. `invoice.html` or `partials/lines.txt`.
        name: String,
        /// Handlebars' description, with line, column and the offending snippet.
        #[source]
        source: handlebars::TemplateError,
    },
    /// A template failed to render, e.g. it names a field the context does not have.
    #[error("the `{}` e-mail cannot be rendered (template `{template}`)", .kind.name())]
    Render {
        /// The e-mail being rendered.
        kind: EmailKind,
        /// The template that failed, e.g. `invoice.html`.
        template: String,
        /// Handlebars' description of the failure.
        #[source]
        source: handlebars::RenderError,
    },
}

/// The compiled templates for every [`EmailKind`].
pub struct Templates {
    /// HTML bodies and HTML partials, with HTML escaping.
    html: Handlebars<'static>,
    /// Subjects, text bodies and text partials, without escaping.
    text: Handlebars<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

impl Templates {
    /// Loads `<dir>/<kind>.{subject,html,txt}.hbs` for every kind plus `<dir>/partials/*.hbs`,
    /// compiles them, and renders each order kind with `EmailContext::sample()` and with a
    /// sample whose Option fields are all None, and the sign-in e-mail with
    /// `SignInContext::sample()`; any failure is an error.
    ///
    /// Partials named `*.html.hbs` go to the HTML registry and `*.txt.hbs` to the text
    /// registry, both under their stem (`partials/lines.html.hbs` is `{{> lines}}` in HTML
    /// templates); other files in `partials/` are ignored.
    pub fn load(dir: &Path) -> Result<Templates, TemplateError> {
        let mut templates = Templates {
            html: registry(true),
            text: registry(false),
        };
        templates.register_partials(&dir.join("partials"))?;
        for kind in EmailKind::ALL {
            templates.register_kind(dir, kind)?;
        }
        templates.check()?;
        Ok(templates)
    }

    /// Renders the subject, HTML and text of one order e-mail (a kind of [`EmailKind::ORDER`]).
    ///
    /// # Errors
    /// [`TemplateError::Render`] when a template fails, e.g. for [`EmailKind::SignIn`], whose
    /// templates need a [`SignInContext`].
    pub fn render(
        &self,
        kind: EmailKind,
        context: &EmailContext,
    ) -> Result<RenderedEmail, TemplateError> {
        self.render_any(kind, context)
    }

    /// Renders the subject, HTML and text of the sign-in e-mail.
    ///
    /// # Errors
    /// [`TemplateError::Render`] when a template fails.
    pub fn render_sign_in(&self, context: &SignInContext) -> Result<RenderedEmail, TemplateError> {
        self.render_any(EmailKind::SignIn, context)
    }

    fn render_any(
        &self,
        kind: EmailKind,
        context: &impl Serialize,
    ) -> Result<RenderedEmail, TemplateError> {
        Ok(RenderedEmail {
            subject: one_line(&render_part(&self.text, kind, "subject", context)?),
            html: render_part(&self.html, kind, "html", context)?,
            text: render_part(&self.text, kind, "txt", context)?,
        })
    }

    fn register_partials(&mut self, partials: &Path) -> Result<(), TemplateError> {
        for entry in fs::read_dir(partials).map_err(|e| missing(partials, e))? {
            let path = entry.map_err(|e| missing(partials, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str());
            let stem_and_part = name.and_then(|n| n.strip_suffix(".hbs")?.rsplit_once('.'));
            let Some((stem, part @ ("html" | "txt"))) = stem_and_part else {
                continue;
            };
            let label = format!("partials/{stem}.{part}");
            register_file(self.registry_for(part), stem, &label, &path)?;
        }
        Ok(())
    }

    fn register_kind(&mut self, dir: &Path, kind: EmailKind) -> Result<(), TemplateError> {
        for part in ["subject", "html", "txt"] {
            let name = template_name(kind, part);
            let path = dir.join(format!("{name}.hbs"));
            register_file(self.registry_for(part), &name, &name, &path)?;
        }
        Ok(())
    }

    /// The HTML registry for `html` templates, the text registry for the rest.
    fn registry_for(&mut self, part: &str) -> &mut Handlebars<'static> {
        if part == "html" {
            &mut self.html
        } else {
            &mut self.text
        }
    }

    /// Renders every order kind with a full and an empty-options sample, and the sign-in
    /// e-mail with its sample, discarding the output.
    fn check(&self) -> Result<(), TemplateError> {
        let full = EmailContext::sample();
        let bare = EmailContext::sample().without_options();
        for kind in EmailKind::ORDER {
            self.render(kind, &full)?;
            self.render(kind, &bare)?;
        }
        self.render_sign_in(&SignInContext::sample())?;
        Ok(())
    }
}

/// A strict-mode registry; `escape_html` keeps the default HTML escaping, else none.
fn registry(escape_html: bool) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    if !escape_html {
        registry.register_escape_fn(handlebars::no_escape);
    }
    registry.register_helper("if", Box::new(StrictIf { positive: true }));
    registry.register_helper("unless", Box::new(StrictIf { positive: false }));
    registry
}

/// Reads `path` and registers it as `name`; `label` names it in errors.
fn register_file(
    registry: &mut Handlebars<'static>,
    name: &str,
    label: &str,
    path: &Path,
) -> Result<(), TemplateError> {
    let source = fs::read_to_string(path).map_err(|e| missing(path, e))?;
    registry
        .register_template_string(name, source)
        .map_err(|source| TemplateError::Syntax {
            name: label.to_owned(),
            source,
        })
}

fn render_part(
    registry: &Handlebars<'static>,
    kind: EmailKind,
    part: &str,
    context: &impl Serialize,
) -> Result<String, TemplateError> {
    let template = template_name(kind, part);
    registry
        .render(&template, context)
        .map_err(|source| TemplateError::Render {
            kind,
            template,
            source,
        })
}

/// `invoice` + `html` → `invoice.html`: the template's name and its file name without `.hbs`.
fn template_name(kind: EmailKind, part: &str) -> String {
    format!("{}.{part}", kind.name())
}

fn missing(path: &Path, source: io::Error) -> TemplateError {
    TemplateError::Missing {
        path: path.to_owned(),
        source,
    }
}

/// Trims a rendered subject and turns every control character (CR, LF, tab…) into a space,
/// so no value can start a new mail header.
fn one_line(subject: &str) -> String {
    subject
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `{{#if}}` (positive) and `{{#unless}}` that fail on an unknown field in strict mode.
///
/// The built-in helpers treat a field that does not exist as false even in strict mode, so
/// `{{#if traking_url}}` would hide its block forever without any error. A field that exists
/// but is `null` (an empty `Option`) is simply false, as with the built-ins.
#[derive(Clone, Copy)]
struct StrictIf {
    positive: bool,
}

impl HelperDef for StrictIf {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let param = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("if", 0))?;
        if r.strict_mode() && param.is_value_missing() {
            let field = param.relative_path().cloned();
            return Err(RenderErrorReason::MissingVariable(field).into());
        }
        let show = param.value().is_truthy(false) == self.positive;
        match if show { h.template() } else { h.inverse() } {
            Some(block) => block.render(r, ctx, rc, out),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error;

    use tempfile::TempDir;

    use super::*;

    fn real_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates")
    }

    fn loaded() -> Templates {
        Templates::load(&real_dir()).expect("the real templates load")
    }

    fn render(kind: EmailKind, context: &EmailContext) -> RenderedEmail {
        loaded().render(kind, context).expect("renders")
    }

    /// The error and all its sources, one per line.
    fn chain(error: &dyn Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(&format!("\n  caused by: {cause}"));
            source = cause.source();
        }
        text
    }

    fn copy_dir(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                fs::copy(&path, &target).unwrap();
            }
        }
    }

    /// Loads a copy of the real templates after `breakage` has been applied to it.
    fn load_broken(breakage: impl FnOnce(&Path)) -> TemplateError {
        let dir = TempDir::new().unwrap();
        copy_dir(&real_dir(), dir.path());
        breakage(dir.path());
        match Templates::load(dir.path()) {
            Ok(_) => panic!("the broken templates loaded"),
            Err(error) => error,
        }
    }

    fn append(path: &Path, text: &str) {
        let mut content = fs::read_to_string(path).unwrap();
        content.push_str(text);
        fs::write(path, content).unwrap();
    }

    fn longest_digit_run(text: &str) -> usize {
        text.split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn every_kind_renders_a_subject_html_and_text_naming_the_order_and_the_customer() {
        let templates = loaded();
        let context = EmailContext::sample();
        for kind in EmailKind::ORDER {
            let email = templates.render(kind, &context).unwrap();
            assert!(!email.subject.is_empty(), "{kind:?} subject is empty");
            for (part, body) in [("html", &email.html), ("text", &email.text)] {
                assert!(
                    body.contains("K3M9Q-2XW7A"),
                    "{kind:?} {part} lacks the reference"
                );
                assert!(
                    body.contains("Ada Lovelace"),
                    "{kind:?} {part} lacks the name"
                );
            }
        }
    }

    #[test]
    fn every_kind_also_renders_when_all_optional_fields_are_empty() {
        let templates = loaded();
        let context = EmailContext::sample().without_options();
        for kind in EmailKind::ORDER {
            let email = templates.render(kind, &context).unwrap();
            assert!(!email.subject.is_empty(), "{kind:?} subject is empty");
            for body in [&email.subject, &email.html, &email.text] {
                assert!(!body.contains("null"), "{kind:?} prints null:\n{body}");
                assert!(!body.contains("Reason:"), "{kind:?} shows an empty reason");
                assert!(
                    !body.contains("Tracking number"),
                    "{kind:?} shows no tracking"
                );
            }
        }
    }

    #[test]
    fn the_order_confirmation_shows_shipping_tax_and_the_total_that_will_be_charged() {
        let email = render(EmailKind::OrderConfirmation, &EmailContext::sample());
        for body in [&email.html, &email.text] {
            for amount in ["38.90 EUR", "4.90 EUR", "8.32 EUR", "52.12 EUR"] {
                assert!(body.contains(amount), "{amount} in {body}");
            }
        }
        let without = EmailContext::sample().without_options();
        let email = render(EmailKind::OrderConfirmation, &without);
        assert!(
            !email.text.contains("Total"),
            "no total line without a quote"
        );
    }

    #[test]
    fn the_invoice_email_names_the_invoice_number_and_the_attached_pdf() {
        let email = render(EmailKind::Invoice, &EmailContext::sample());
        assert_eq!(
            email.subject,
            "Your invoice INV-2026-000123 for order K3M9Q-2XW7A"
        );
        for body in [&email.html, &email.text] {
            assert!(body.contains("INV-2026-000123"));
            assert!(body.contains("52.12 EUR"));
            assert!(body.contains("Enamel mug"));
            assert!(body.contains("PDF is attached"));
        }
    }

    #[test]
    fn the_shipped_email_names_the_carrier_the_tracking_number_and_the_tracking_link() {
        let email = render(EmailKind::Shipped, &EmailContext::sample());
        for body in [&email.html, &email.text] {
            assert!(body.contains("DHL"));
            assert!(body.contains("1Z999AA10123456784"));
            assert!(body.contains("https://tracking.example.com/1Z999AA10123456784"));
        }
    }

    #[test]
    fn the_payment_failed_email_gives_the_reason_and_says_nothing_was_charged() {
        let email = render(EmailKind::PaymentFailed, &EmailContext::sample());
        for body in [&email.html, &email.text] {
            assert!(body.contains("declined"));
            assert!(body.contains("Insufficient funds"));
            assert!(body.contains("nothing was charged"));
            assert!(body.contains("released"));
        }
    }

    #[test]
    fn the_action_required_email_asks_to_confirm_the_payment_on_the_order_page() {
        let email = render(EmailKind::PaymentActionRequired, &EmailContext::sample());
        assert_eq!(
            email.subject,
            "Please confirm your payment for order K3M9Q-2XW7A"
        );
        for body in [&email.html, &email.text] {
            assert!(body.contains("Confirm your payment"), "{body}");
            assert!(body.contains("52.12 EUR"), "{body}");
            assert!(body.contains("Nothing has been charged yet"), "{body}");
        }
        assert!(email.text.contains(&EmailContext::sample().order_url));
    }

    #[test]
    fn html_escapes_a_hostile_customer_name_while_text_keeps_it_literal() {
        let context = EmailContext {
            customer_name: "<script>alert(1)</script>".to_owned(),
            ..EmailContext::sample()
        };
        for kind in EmailKind::ORDER {
            let email = render(kind, &context);
            assert!(
                !email.html.contains("<script>"),
                "{kind:?} html runs the script"
            );
            assert!(email.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
            assert!(email.text.contains("<script>alert(1)</script>"));
        }
    }

    #[test]
    fn a_line_break_in_a_value_never_reaches_the_subject() {
        let context = EmailContext {
            order_reference: "K3M9Q-2XW7A\r\nBcc: victim@example.com\n".to_owned(),
            ..EmailContext::sample()
        };
        for kind in EmailKind::ORDER {
            let subject = render(kind, &context).subject;
            assert!(!subject.contains(['\r', '\n']), "{kind:?}: {subject:?}");
            assert_eq!(subject, subject.trim());
        }
    }

    #[test]
    fn the_html_parts_load_nothing_external_and_run_no_scripts() {
        let templates = loaded();
        for kind in EmailKind::ORDER {
            let html = templates
                .render(kind, &EmailContext::sample())
                .unwrap()
                .html;
            for banned in [
                "<script", "<link", "<img", "src=", "url(", "@import", "<style",
            ] {
                assert!(!html.contains(banned), "{kind:?} html contains {banned}");
            }
        }
    }

    #[test]
    fn rendered_emails_never_contain_payment_method_ids_or_card_numbers() {
        let templates = loaded();
        let contexts = [
            EmailContext::sample(),
            EmailContext::sample().without_options(),
        ];
        for kind in EmailKind::ORDER {
            for context in &contexts {
                let email = templates.render(kind, context).unwrap();
                for body in [&email.subject, &email.html, &email.text] {
                    assert!(!body.contains("pm_"), "{kind:?} shows a payment method id");
                    assert!(longest_digit_run(body) < 16, "{kind:?} shows a card number");
                }
            }
        }
    }

    #[test]
    fn a_missing_template_file_makes_load_fail_naming_the_file() {
        let error = load_broken(|dir| fs::remove_file(dir.join("invoice.txt.hbs")).unwrap());
        let missing_path = match &error {
            TemplateError::Missing { path, .. } => path.clone(),
            other => panic!("not a missing file: {}", chain(other)),
        };
        assert!(missing_path.ends_with("invoice.txt.hbs"));
        assert!(error.to_string().contains("invoice.txt.hbs"));
    }

    #[test]
    fn a_missing_partials_directory_makes_load_fail() {
        let error = load_broken(|dir| fs::remove_dir_all(dir.join("partials")).unwrap());
        assert!(
            matches!(&error, TemplateError::Missing { path, .. } if path.ends_with("partials"))
        );
    }

    #[test]
    fn an_unclosed_if_makes_load_fail_with_a_syntax_error_naming_the_template() {
        let error = load_broken(|dir| append(&dir.join("shipped.html.hbs"), "{{#if x}}\n"));
        assert!(
            matches!(&error, TemplateError::Syntax { name, .. } if name == "shipped.html"),
            "{}",
            chain(&error)
        );
        assert!(error.to_string().contains("shipped.html"));
    }

    #[test]
    fn a_syntax_error_in_a_partial_makes_load_fail_naming_the_partial() {
        let error = load_broken(|dir| append(&dir.join("partials/lines.txt.hbs"), "{{#if x}}"));
        assert!(
            matches!(&error, TemplateError::Syntax { name, .. } if name == "partials/lines.txt"),
            "{}",
            chain(&error)
        );
    }

    #[test]
    fn an_unknown_variable_makes_load_fail_naming_the_kind_and_the_variable() {
        let error = load_broken(|dir| append(&dir.join("refunded.txt.hbs"), "{{no_such_field}}"));
        assert!(
            matches!(&error, TemplateError::Render { kind: EmailKind::Refunded, template, .. }
                if template == "refunded.txt"),
            "{}",
            chain(&error)
        );
        assert!(chain(&error).contains("no_such_field"), "{}", chain(&error));
    }

    #[test]
    fn an_if_on_an_unknown_field_makes_load_fail_instead_of_hiding_its_block() {
        let error =
            load_broken(|dir| append(&dir.join("shipped.html.hbs"), "{{#if traking_url}}x{{/if}}"));
        assert!(
            matches!(
                &error,
                TemplateError::Render {
                    kind: EmailKind::Shipped,
                    ..
                }
            ),
            "{}",
            chain(&error)
        );
        assert!(chain(&error).contains("traking_url"), "{}", chain(&error));
    }

    #[test]
    fn a_missing_partial_makes_load_fail() {
        let error =
            load_broken(|dir| fs::remove_file(dir.join("partials/footer.html.hbs")).unwrap());
        assert!(
            matches!(&error, TemplateError::Render { .. }),
            "{}",
            chain(&error)
        );
        assert!(chain(&error).contains("footer"), "{}", chain(&error));
    }

    #[test]
    fn the_sign_in_email_carries_the_one_time_link_and_names_no_order() {
        let email = loaded()
            .render_sign_in(&SignInContext::sample())
            .expect("renders");
        assert_eq!(email.subject, "Your sign-in link for ChargeFlow Coffee");
        for body in [&email.html, &email.text] {
            assert!(body.contains("Ada Lovelace"));
            assert!(body.contains("15 minutes"));
            assert!(body.contains("https://shop.example.com/find-orders"));
            assert!(!body.contains("/orders/"), "no order link");
        }
        assert!(email.text.contains(&SignInContext::sample().sign_in_url));
        let escaped_link = "https://shop.example.com/sign-in?token&#x3D;7f3a9c21";
        assert!(email.html.contains(escaped_link), "{}", email.html);
    }

    #[test]
    fn the_sign_in_email_escapes_the_name_and_keeps_its_subject_on_one_line() {
        let context = SignInContext {
            customer_name: "<script>alert(1)</script>".to_owned(),
            shop_name: "Shop\r\nBcc: victim@example.com".to_owned(),
            ..SignInContext::sample()
        };
        let email = loaded().render_sign_in(&context).expect("renders");
        assert!(!email.html.contains("<script>"));
        assert!(email.text.contains("<script>alert(1)</script>"));
        assert!(!email.subject.contains(['\r', '\n']), "{:?}", email.subject);
        for banned in [
            "<script", "<link", "<img", "src=", "url(", "@import", "<style",
        ] {
            let html = loaded()
                .render_sign_in(&SignInContext::sample())
                .unwrap()
                .html;
            assert!(!html.contains(banned), "sign-in html contains {banned}");
        }
    }

    #[test]
    fn an_unknown_variable_in_the_sign_in_email_makes_load_fail() {
        let error = load_broken(|dir| append(&dir.join("sign_in.txt.hbs"), "{{order_reference}}"));
        assert!(
            matches!(
                &error,
                TemplateError::Render {
                    kind: EmailKind::SignIn,
                    ..
                }
            ),
            "{}",
            chain(&error)
        );
    }

    #[test]
    fn kind_names_are_distinct_snake_case_file_stems() {
        let names: std::collections::HashSet<_> = EmailKind::ALL.map(EmailKind::name).into();
        assert_eq!(names.len(), EmailKind::ALL.len());
        for name in names {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(
                real_dir().join(format!("{name}.subject.hbs")).is_file(),
                "{name}"
            );
        }
    }
}
