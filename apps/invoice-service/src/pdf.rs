//! Renders an [`InvoiceDocument`](domain::InvoiceDocument) to an A4 portrait PDF.
//!
//! The PDF uses only the builtin Helvetica and Helvetica-Bold fonts, so nothing is embedded and
//! the text is limited to Latin-1: every other character is drawn as `?`. Builtin fonts come
//! with no metrics here, so text widths are a conservative per-character estimate (never
//! narrower than Helvetica-Bold); table cells that would overflow their column are cut and
//! end in `...`.
//!
//! Pagination: page 1 carries the title, the seller, the bill-to address and the invoice
//! details, then the line-item table. When the lines do not fit, the table continues on further
//! pages, each starting with the table header again. The totals follow the last line and move
//! to a page of their own when they do not fit below it. Every page has the footer
//! `Invoice INV-2026-000001 - page N of M`.

use domain::{InvoiceDocument, InvoiceLine};
use printpdf::{
    BuiltinFont, Line, LinePoint, Mm, Op, PdfDocument, PdfFontHandle, PdfPage,
    PdfParseErrorSeverity, PdfSaveOptions, PdfWarnMsg, Point, Pt, TextItem,
};

/// Points per millimetre.
const PT_PER_MM: f32 = 72.0 / 25.4;
/// A4 width in millimetres.
const PAGE_WIDTH_MM: f32 = 210.0;
/// A4 height in millimetres.
const PAGE_HEIGHT_MM: f32 = 297.0;
/// A4 width in points.
const PAGE_WIDTH: f32 = PAGE_WIDTH_MM * PT_PER_MM;
/// A4 height in points.
const PAGE_HEIGHT: f32 = PAGE_HEIGHT_MM * PT_PER_MM;
/// The left, right and top margin.
const MARGIN: f32 = 20.0 * PT_PER_MM;
/// The left edge of the content.
const LEFT: f32 = MARGIN;
/// The right edge of the content.
const RIGHT: f32 = PAGE_WIDTH - MARGIN;
/// The top edge of the content.
const TOP: f32 = PAGE_HEIGHT - MARGIN;
/// Nothing but the footer goes below this line.
const BOTTOM: f32 = 25.0 * PT_PER_MM;
/// The baseline of the footer.
const FOOTER_Y: f32 = 12.0 * PT_PER_MM;

/// The size of the title.
const TITLE_SIZE: f32 = 20.0;
/// The size of the address and detail blocks.
const BODY_SIZE: f32 = 10.0;
/// The size of table cells and totals.
const TABLE_SIZE: f32 = 9.0;
/// The size of the footer.
const FOOTER_SIZE: f32 = 8.0;
/// The distance between two lines of a block.
const LINE_HEIGHT: f32 = 14.0;
/// The height of one table row.
const ROW_HEIGHT: f32 = 16.0;
/// Where the seller block starts (it fills the right half of the page).
const SELLER_X: f32 = 340.0;
/// Where the values of the invoice details start.
const DETAIL_VALUE_X: f32 = LEFT + 80.0;
/// The space kept between a cell's text and the next column.
const CELL_PADDING: f32 = 6.0;
/// The height of the totals block: four rows and the gap above them.
const TOTALS_HEIGHT: f32 = 4.0 * ROW_HEIGHT + 8.0;
/// What a cut-off text ends in.
const ELLIPSIS: &str = "...";

/// The error of rendering.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// printpdf found errors in the drawing operations while building the PDF objects.
    #[error(
        "printpdf reported {} error(s) while building the PDF; the first: {}",
        .0.len(),
        .0.first().map_or("", |w| w.msg.as_str())
    )]
    Build(Vec<PdfWarnMsg>),
    /// Writing the PDF objects out as bytes failed.
    #[error("writing the PDF failed")]
    Write(#[from] std::io::Error),
}

/// Renders `doc` as an A4 PDF.
///
/// # Errors
/// [`PdfError::Build`] when printpdf reports an error in the drawing operations, and
/// [`PdfError::Write`] when the PDF cannot be written out.
pub fn render(doc: &InvoiceDocument) -> Result<Vec<u8>, PdfError> {
    let mut canvas = Canvas::new();
    draw_first_page_header(&mut canvas, doc);
    draw_table_header(&mut canvas);
    for line in &doc.lines {
        draw_line_row(&mut canvas, doc, line);
    }
    draw_totals(&mut canvas, doc);
    let mut pages = canvas.pages;
    draw_footers(&mut pages, &doc.number.to_string());
    save(&format!("Invoice {}", doc.number), pages)
}

/// The drawing operations of every page so far, and the cursor on the last one.
struct Canvas {
    /// The operations, one list per page.
    pages: Vec<Vec<Op>>,
    /// The top of the free space on the last page.
    y: f32,
}

impl Canvas {
    /// One empty page with the cursor at the top.
    fn new() -> Self {
        Canvas {
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    /// Starts a new page with the cursor at the top.
    fn new_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// Whether `height` more points fit above the bottom of the content area.
    fn fits(&self, height: f32) -> bool {
        self.y - height >= BOTTOM
    }

    /// The operations of the last page.
    fn ops(&mut self) -> &mut Vec<Op> {
        self.pages.last_mut().expect("a canvas always has a page")
    }
}

/// Which of the two builtin fonts a text is set in.
#[derive(Debug, Clone, Copy)]
enum Weight {
    /// Helvetica.
    Regular,
    /// Helvetica-Bold.
    Bold,
}

/// A text to draw: its font, size and baseline position.
#[derive(Debug, Clone, Copy)]
struct Style {
    /// Regular or bold.
    weight: Weight,
    /// The font size in points.
    size: f32,
}

/// Regular body text.
const BODY: Style = Style {
    weight: Weight::Regular,
    size: BODY_SIZE,
};
/// Bold body text.
const BODY_BOLD: Style = Style {
    weight: Weight::Bold,
    size: BODY_SIZE,
};
/// A regular table cell.
const CELL: Style = Style {
    weight: Weight::Regular,
    size: TABLE_SIZE,
};
/// The footer.
const FOOTER: Style = Style {
    weight: Weight::Regular,
    size: FOOTER_SIZE,
};
/// A bold table cell (header, total).
const CELL_BOLD: Style = Style {
    weight: Weight::Bold,
    size: TABLE_SIZE,
};

/// Draws `text` with its baseline starting at (`x`, `y`), Latin-1 only.
fn draw_text(ops: &mut Vec<Op>, style: Style, x: f32, y: f32, text: &str) {
    let font = match style.weight {
        Weight::Regular => BuiltinFont::Helvetica,
        Weight::Bold => BuiltinFont::HelveticaBold,
    };
    ops.extend([
        Op::StartTextSection,
        Op::SetFont {
            font: PdfFontHandle::Builtin(font),
            size: Pt(style.size),
        },
        Op::SetTextCursor {
            pos: Point { x: Pt(x), y: Pt(y) },
        },
        Op::ShowText {
            items: vec![TextItem::Text(latin1(text))],
        },
        Op::EndTextSection,
    ]);
}

/// Draws `text` so that it ends at `right`.
fn draw_text_right(ops: &mut Vec<Op>, style: Style, right: f32, y: f32, text: &str) {
    draw_text(ops, style, right - text_width(text, style.size), y, text);
}

/// Draws a thin horizontal rule from `x1` to `x2` at height `y`.
fn draw_rule(ops: &mut Vec<Op>, x1: f32, x2: f32, y: f32) {
    let point = |x| LinePoint {
        p: Point { x: Pt(x), y: Pt(y) },
        bezier: false,
    };
    ops.push(Op::SetOutlineThickness { pt: Pt(0.5) });
    ops.push(Op::DrawLine {
        line: Line {
            points: vec![point(x1), point(x2)],
            is_closed: false,
        },
    });
}

/// Draws `lines` top-down from baseline `y`, cut to `width`; returns the baseline after them.
fn draw_block(ops: &mut Vec<Op>, x: f32, mut y: f32, width: f32, lines: &[(Style, String)]) -> f32 {
    for (style, text) in lines {
        draw_text(ops, *style, x, y, &fit_to_width(text, width, style.size));
        y -= LINE_HEIGHT;
    }
    y
}

/// Draws the title, the invoice details, the bill-to and the seller blocks on page 1.
fn draw_first_page_header(canvas: &mut Canvas, doc: &InvoiceDocument) {
    let title_y = canvas.y - TITLE_SIZE;
    let ops = canvas.ops();
    draw_text(
        ops,
        Style {
            weight: Weight::Bold,
            size: TITLE_SIZE,
        },
        LEFT,
        title_y,
        "Invoice",
    );
    let details_end = draw_invoice_details(ops, doc, title_y - 2.0 * LINE_HEIGHT);
    let bill_to_end = draw_bill_to(ops, doc, details_end - LINE_HEIGHT);
    let seller_end = draw_seller(ops, doc, title_y);
    canvas.y = bill_to_end.min(seller_end) - LINE_HEIGHT;
}

/// Draws invoice number, date and order id as label/value pairs; returns the next baseline.
fn draw_invoice_details(ops: &mut Vec<Op>, doc: &InvoiceDocument, mut y: f32) -> f32 {
    let details = [
        ("Invoice number", doc.number.to_string()),
        ("Invoice date", doc.issued_on.format("%Y-%m-%d").to_string()),
        ("Order", domain::order_reference(doc.order_id)),
    ];
    for (label, value) in details {
        draw_text(ops, BODY_BOLD, LEFT, y, label);
        draw_text(
            ops,
            BODY,
            DETAIL_VALUE_X,
            y,
            &fit_to_width(&value, SELLER_X - DETAIL_VALUE_X, BODY_SIZE),
        );
        y -= LINE_HEIGHT;
    }
    y
}

/// Draws the bill-to address under a "Bill to" label; returns the next baseline.
fn draw_bill_to(ops: &mut Vec<Op>, doc: &InvoiceDocument, y: f32) -> f32 {
    let to = &doc.bill_to;
    let lines = [
        (BODY_BOLD, "Bill to".to_owned()),
        (BODY, to.name.clone()),
        (BODY, to.line1.clone()),
        (BODY, format!("{} {}", to.postal_code, to.city)),
        (BODY, to.country.clone()),
    ];
    draw_block(ops, LEFT, y, SELLER_X - LEFT - CELL_PADDING, &lines)
}

/// Draws the seller's name, address, VAT id and e-mail at the top right; returns the next baseline.
fn draw_seller(ops: &mut Vec<Op>, doc: &InvoiceDocument, y: f32) -> f32 {
    let seller = &doc.seller;
    let mut lines = vec![(BODY_BOLD, seller.name.clone())];
    lines.extend(seller.address_lines.iter().map(|l| (BODY, l.clone())));
    if let Some(vat_id) = &seller.vat_id {
        lines.push((BODY, format!("VAT ID: {vat_id}")));
    }
    lines.push((BODY, seller.email.clone()));
    draw_block(ops, SELLER_X, y, RIGHT - SELLER_X, &lines)
}

/// How a column's cells are aligned.
#[derive(Debug, Clone, Copy)]
enum Align {
    /// Text starts at the column's left edge.
    Left,
    /// Text ends at the column's right edge.
    Right,
}

/// A column of the line-item table.
struct Column {
    /// The header text.
    title: &'static str,
    /// The left edge.
    x: f32,
    /// The width, including the padding towards the next column.
    width: f32,
    /// The alignment of header and cells.
    align: Align,
}

/// The line-item table's columns, left to right, spanning the content width.
const COLUMNS: [Column; 5] = [
    Column {
        title: "SKU",
        x: LEFT,
        width: 80.0,
        align: Align::Left,
    },
    Column {
        title: "Item",
        x: LEFT + 80.0,
        width: 190.0,
        align: Align::Left,
    },
    Column {
        title: "Qty",
        x: LEFT + 270.0,
        width: 40.0,
        align: Align::Right,
    },
    Column {
        title: "Unit price",
        x: LEFT + 310.0,
        width: 86.0,
        align: Align::Right,
    },
    Column {
        title: "Amount",
        x: LEFT + 396.0,
        width: RIGHT - LEFT - 396.0,
        align: Align::Right,
    },
];

/// Draws one table row with its top at the cursor and moves the cursor below it.
fn draw_row(canvas: &mut Canvas, style: Style, cells: [&str; 5]) {
    let baseline = canvas.y - ROW_HEIGHT + 4.0;
    let ops = canvas.ops();
    for (column, text) in COLUMNS.iter().zip(cells) {
        let text = fit_to_width(text, column.width - CELL_PADDING, style.size);
        match column.align {
            Align::Left => draw_text(ops, style, column.x, baseline, &text),
            Align::Right => draw_text_right(ops, style, column.x + column.width, baseline, &text),
        }
    }
    canvas.y -= ROW_HEIGHT;
}

/// Draws the table header with a rule under it.
fn draw_table_header(canvas: &mut Canvas) {
    draw_row(canvas, CELL_BOLD, COLUMNS.map(|c| c.title));
    let y = canvas.y + 1.0;
    draw_rule(canvas.ops(), LEFT, RIGHT, y);
    canvas.y -= 2.0;
}

/// Draws one invoice line, first moving to a new page (with the header) if it does not fit.
fn draw_line_row(canvas: &mut Canvas, doc: &InvoiceDocument, line: &InvoiceLine) {
    if !canvas.fits(ROW_HEIGHT) {
        canvas.new_page();
        draw_table_header(canvas);
    }
    let quantity = line.quantity.to_string();
    let unit_price = doc.money(line.unit_price_minor).to_string();
    let amount = doc.money(line.line_total_minor).to_string();
    draw_row(
        canvas,
        CELL,
        [&line.sku, &line.name, &quantity, &unit_price, &amount],
    );
}

/// Draws subtotal, shipping, tax and total, on a new page if they do not fit.
fn draw_totals(canvas: &mut Canvas, doc: &InvoiceDocument) {
    if !canvas.fits(TOTALS_HEIGHT) {
        canvas.new_page();
    }
    let totals = &doc.totals;
    let rows = [
        (CELL, "Subtotal".to_owned(), totals.subtotal_minor),
        (CELL, "Shipping".to_owned(), totals.shipping_minor),
        (CELL, format!("Tax ({})", totals.tax_rate), totals.tax_minor),
        (CELL_BOLD, "Total".to_owned(), totals.total_minor),
    ];
    let y = canvas.y - 2.0;
    draw_rule(canvas.ops(), COLUMNS[3].x, RIGHT, y);
    canvas.y -= 8.0;
    for (style, label, amount) in rows {
        draw_total_row(canvas, style, &label, &doc.money(amount).to_string());
    }
}

/// Draws a totals row: the label ends where the unit prices do, the amount under the amounts.
fn draw_total_row(canvas: &mut Canvas, style: Style, label: &str, amount: &str) {
    draw_row(canvas, style, ["", "", "", label, amount]);
}

/// Draws "Invoice INV-… - page N of M" at the bottom of every page.
fn draw_footers(pages: &mut [Vec<Op>], number: &str) {
    let count = pages.len();
    for (index, ops) in pages.iter_mut().enumerate() {
        let text = format!("Invoice {number} - page {} of {count}", index + 1);
        let x = (PAGE_WIDTH - text_width(&text, FOOTER_SIZE)) / 2.0;
        draw_text(ops, FOOTER, x, FOOTER_Y, &text);
    }
}

/// Builds the PDF from the pages' operations and writes it out, compressed.
fn save(title: &str, pages: Vec<Vec<Op>>) -> Result<Vec<u8>, PdfError> {
    let (width, height) = (Mm(PAGE_WIDTH_MM), Mm(PAGE_HEIGHT_MM));
    let pages = pages
        .into_iter()
        .map(|ops| PdfPage::new(width, height, ops))
        .collect();
    let mut warnings = Vec::new();
    let mut pdf = PdfDocument::new(title)
        .with_pages(pages)
        .to_lopdf_document(&PdfSaveOptions::default(), &mut warnings);
    warnings.retain(|w| w.severity == PdfParseErrorSeverity::Error);
    if !warnings.is_empty() {
        return Err(PdfError::Build(warnings));
    }
    pdf.compress();
    let mut bytes = Vec::new();
    pdf.save_to(&mut bytes)?;
    Ok(bytes)
}

/// `text` with every character the builtin fonts cannot show (outside Latin-1, or a control
/// character) replaced by `?`.
fn latin1(text: &str) -> String {
    text.chars()
        .map(|c| match u32::from(c) {
            0x20..=0x7E | 0xA0..=0xFF => c,
            _ => '?',
        })
        .collect()
}

/// `text`, cut and ended with `...` if it is wider than `max_width` at font size `size`.
fn fit_to_width(text: &str, max_width: f32, size: f32) -> String {
    if text_width(text, size) <= max_width {
        return text.to_owned();
    }
    let budget = max_width - text_width(ELLIPSIS, size);
    let mut used = 0.0;
    let mut cut = String::new();
    for c in text.chars() {
        used += char_width_em(c) * size;
        if used > budget {
            break;
        }
        cut.push(c);
    }
    format!("{}{ELLIPSIS}", cut.trim_end())
}

/// The estimated width of `text` at font size `size`, in points.
fn text_width(text: &str, size: f32) -> f32 {
    text.chars().map(char_width_em).sum::<f32>() * size
}

/// A conservative width of `c` in em: at least its advance in Helvetica and Helvetica-Bold
/// (exact for digits, space and the punctuation of amounts).
fn char_width_em(c: char) -> f32 {
    match c {
        ' ' | '.' | ',' | '/' | 'i' | 'j' | 'l' | 'I' => 0.278,
        ':' | ';' | '!' | '|' | '(' | ')' | '[' | ']' | '-' | 'f' | 't' | '\'' => 0.333,
        'r' | '*' | '`' => 0.389,
        '0'..='9' | '$' | '#' | '_' => 0.556,
        'm' | 'M' | 'W' => 1.0,
        'A'..='Z' | 'w' | '&' => 0.778,
        'a'..='z' | '?' | '"' | '+' | '=' | '<' | '>' | '~' | '^' | '{' | '}' | '\\' => 0.611,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use domain::{BillTo, Currency, InvoiceLine, InvoiceNumber, InvoiceTotals, Seller, TaxRate};

    fn line(index: usize, name: &str) -> InvoiceLine {
        let unit_price_minor = 1450 + i64::try_from(index).unwrap() * 10;
        InvoiceLine {
            sku: format!("SKU-{index:04}"),
            name: name.to_owned(),
            quantity: 2,
            unit_price_minor,
            line_total_minor: unit_price_minor * 2,
        }
    }

    fn invoice(lines: Vec<InvoiceLine>) -> InvoiceDocument {
        let tax_rate = TaxRate::from_basis_points(1900).unwrap();
        let totals: InvoiceTotals = domain::compute_totals(&lines, 490, tax_rate).unwrap();
        InvoiceDocument {
            number: InvoiceNumber {
                year: 2026,
                sequence: 1,
            },
            issued_on: NaiveDate::from_ymd_opt(2026, 3, 14).unwrap(),
            order_id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
            seller: Seller {
                name: "ChargeFlow GmbH".into(),
                address_lines: vec![
                    "Hauptstrasse 1".into(),
                    "10115 Berlin".into(),
                    "Germany".into(),
                ],
                vat_id: Some("DE123456789".into()),
                email: "billing@chargeflow.example".into(),
            },
            bill_to: BillTo {
                name: "Erika Mustermann".into(),
                line1: "Lindenweg 7".into(),
                postal_code: "80331".into(),
                city: "Munich".into(),
                country: "DE".into(),
            },
            currency: Currency::parse("EUR").unwrap(),
            lines,
            totals,
        }
    }

    fn numbered_lines(count: usize) -> Vec<InvoiceLine> {
        (1..=count)
            .map(|i| line(i, &format!("Charging cable type {i}")))
            .collect()
    }

    /// The text of each page, read back with lopdf.
    fn page_texts(pdf: &[u8]) -> Vec<String> {
        let document = lopdf::Document::load_mem(pdf).unwrap();
        let pages = document.get_pages();
        pages
            .keys()
            .map(|&number| document.extract_text(&[number]).unwrap())
            .collect()
    }

    fn assert_totals_shown(doc: &InvoiceDocument, text: &str) {
        let totals = doc.totals;
        for amount in [
            totals.subtotal_minor,
            totals.shipping_minor,
            totals.tax_minor,
            totals.total_minor,
        ] {
            let shown = doc.money(amount).to_string();
            assert!(text.contains(&shown), "{shown} missing from {text}");
        }
        assert!(text.contains("Tax (19%)"));
    }

    #[test]
    fn a_short_invoice_shows_its_parties_lines_and_totals_on_one_page() {
        let doc = invoice(vec![
            line(1, "Wallbox 11 kW"),
            line(2, "Charging cable 5 m"),
            line(3, "Installation \u{00d7} 1"),
        ]);
        let pdf = render(&doc).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let pages = page_texts(&pdf);
        assert_eq!(pages.len(), 1);
        let text = &pages[0];
        let order_id = domain::order_reference(doc.order_id);
        let expected = [
            "Invoice",
            "INV-2026-000001",
            "2026-03-14",
            &order_id,
            "ChargeFlow GmbH",
            "Hauptstrasse 1",
            "VAT ID: DE123456789",
            "billing@chargeflow.example",
            "Erika Mustermann",
            "Lindenweg 7",
            "80331 Munich",
            "SKU",
            "Item",
            "Qty",
            "Unit price",
            "Amount",
        ];
        for expected in expected {
            assert!(text.contains(expected), "{expected} missing from {text}");
        }
        for l in &doc.lines {
            let amount = doc.money(l.line_total_minor).to_string();
            for expected in [&l.sku, &l.name, &amount] {
                assert!(
                    text.contains(expected.as_str()),
                    "{expected} missing from {text}"
                );
            }
        }
        assert_totals_shown(&doc, text);
        assert!(text.contains("Invoice INV-2026-000001 - page 1 of 1"));
    }

    #[test]
    fn a_long_invoice_continues_on_further_pages_with_the_header_repeated() {
        let doc = invoice(numbered_lines(80));
        let pdf = render(&doc).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let pages = page_texts(&pdf);
        assert!(pages.len() > 1, "80 lines on {} page(s)", pages.len());
        let count = pages.len();
        for (index, text) in pages.iter().enumerate() {
            let footer = format!("Invoice INV-2026-000001 - page {} of {count}", index + 1);
            assert!(text.contains(&footer), "{footer} missing from {text}");
            if text.contains("SKU-") {
                assert!(
                    text.contains("Unit price") && text.contains("Amount"),
                    "no header on {text}"
                );
            }
        }
        let all = pages.concat();
        for l in &doc.lines {
            assert!(
                all.contains(&l.sku) && all.contains(&l.name),
                "{} missing",
                l.name
            );
        }
        assert_totals_shown(&doc, &pages[count - 1]);
    }

    #[test]
    fn totals_that_do_not_fit_below_the_last_line_move_to_a_new_page() {
        let one_page = page_texts(&render(&invoice(numbered_lines(1))).unwrap()).len();
        let fitting = (1..200)
            .find(|&n| page_texts(&render(&invoice(numbered_lines(n))).unwrap()).len() > one_page)
            .unwrap();
        let doc = invoice(numbered_lines(fitting));
        let pages = page_texts(&render(&doc).unwrap());
        let last = pages.last().unwrap();
        assert_totals_shown(&doc, last);
        assert!(
            pages[0].contains(&doc.lines[fitting - 1].sku),
            "the lines stay on page 1"
        );
        assert!(
            !last.contains("SKU-"),
            "the totals page has no lines: {last}"
        );
    }

    #[test]
    fn characters_outside_latin_1_are_drawn_as_question_marks() {
        let doc = invoice(vec![line(1, "Kabel \u{2014} \u{65e5}\u{672c} Stecker")]);
        let pdf = render(&doc).unwrap();
        let text = page_texts(&pdf).concat();
        assert!(text.contains("Kabel ? ?? Stecker"), "{text}");
        assert_eq!(latin1("a\u{00d7}b\u{2014}c\td"), "a\u{00d7}b?c?d");
    }

    #[test]
    fn long_item_names_are_cut_with_an_ellipsis_to_fit_their_column() {
        let name = "Extremely long product name ".repeat(5);
        let doc = invoice(vec![line(1, &name)]);
        let text = page_texts(&render(&doc).unwrap()).concat();
        assert!(!text.contains(name.trim_end()));
        let cut = fit_to_width(&name, COLUMNS[1].width - CELL_PADDING, TABLE_SIZE);
        assert!(cut.starts_with("Extremely long product name") && cut.ends_with(ELLIPSIS));
        assert!(text.contains(&cut), "{cut} missing from {text}");
        assert!(text_width(&cut, TABLE_SIZE) <= COLUMNS[1].width - CELL_PADDING);
        assert_eq!(fit_to_width("Short", 100.0, TABLE_SIZE), "Short");
    }
}
