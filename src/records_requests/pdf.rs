//! Lays a [`Letter`] out as a PDF on US Letter pages, in the standard
//! Helvetica fonts every PDF reader has (nothing embedded): lines wrapped
//! by the fonts' own character widths, pages added as the text runs on.
//! Text outside the fonts' Windows-1252 repertoire is spelled in plain
//! letters; [`unsupported`] finds it first, so a letter naming someone in
//! another script is printed from its page instead.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

use super::letter::{Block, Letter};

const PAGE_WIDTH: f32 = 612.0;
const PAGE_HEIGHT: f32 = 792.0;
const MARGIN: f32 = 72.0;
const SIZE: f32 = 11.0;
const HEADING_SIZE: f32 = 12.5;
const LEADING: f32 = 15.0;

/// Advance widths of Helvetica's printable ASCII characters (space to
/// tilde), in thousandths of the font size, from the font's metrics.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556, 556, 556, 556, 556,
    556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667, 611, 778, 722, 278, 500, 667, 556, 833,
    722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667, 667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556,
    556, 278, 556, 556, 222, 222, 500, 222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334,
    260, 334, 584,
];

/// The font's byte for `c` in Windows-1252, where it has one.
fn win_ansi(c: char) -> Option<u8> {
    let code = c as u32;
    match c {
        ' '..='~' => Some(code as u8),
        '\u{a0}'..='\u{ff}' => Some(code as u8),
        '€' => Some(0x80),
        '…' => Some(0x85),
        '‘' => Some(0x91),
        '’' => Some(0x92),
        '“' => Some(0x93),
        '”' => Some(0x94),
        '•' => Some(0x95),
        '–' => Some(0x96),
        '—' => Some(0x97),
        _ => None,
    }
}

/// The characters of `letter` the fonts cannot set (each once): a name
/// spelled another way would not be the patient's name.
pub fn unsupported(letter: &Letter) -> Vec<char> {
    let mut missing: Vec<char> = Vec::new();
    let mut look = |text: &str| {
        for c in text.chars() {
            if win_ansi(c).is_none() && !c.is_control() && !missing.contains(&c) {
                missing.push(c);
            }
        }
    };
    look(&letter.title);
    for block in &letter.blocks {
        match block {
            Block::Lines(lines) | Block::List(lines) => lines.iter().for_each(|l| look(l)),
            Block::Heading(t) | Block::Paragraph(t) | Block::Quote(t) | Block::SignatureLine(t) => look(t),
        }
    }
    missing
}

/// `text` in the fonts' encoding; characters it lacks are transliterated.
fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match win_ansi(c) {
            Some(byte) => out.push(byte),
            None if c.is_control() => out.push(b' '),
            None => {
                out.extend(deunicode::deunicode_char(c).unwrap_or("?").bytes().filter(|b| (b' '..=b'~').contains(b)))
            }
        }
    }
    out
}

/// Width of encoded text at `size`; bold runs a little wider.
fn width(bytes: &[u8], size: f32, bold: bool) -> f32 {
    let units: u32 = bytes
        .iter()
        .map(|b| match b {
            b' '..=b'~' => u32::from(HELVETICA[usize::from(b - b' ')]),
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0 * if bold { 1.08 } else { 1.0 }
}

/// Splits `text` into lines no wider than `max`, at spaces where it can.
fn wrap(text: &str, size: f32, bold: bool, max: f32) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    let mut line: Vec<u8> = Vec::new();
    for word in encode(text).split(|b| *b == b' ').filter(|w| !w.is_empty()) {
        let mut candidate = line.clone();
        if !candidate.is_empty() {
            candidate.push(b' ');
        }
        candidate.extend_from_slice(word);
        if width(&candidate, size, bold) <= max || line.is_empty() {
            line = candidate;
        } else {
            lines.push(std::mem::take(&mut line));
            line.extend_from_slice(word);
        }
        // A single word wider than the line is cut where it must be.
        while width(&line, size, bold) > max && line.len() > 1 {
            let mut cut = line.len() - 1;
            while cut > 1 && width(&line[..cut], size, bold) > max {
                cut -= 1;
            }
            let rest = line.split_off(cut);
            lines.push(std::mem::replace(&mut line, rest));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// One line placed on a page.
struct Placed {
    x: f32,
    text: Vec<u8>,
    size: f32,
    bold: bool,
}

/// The letter's lines, page by page, top to bottom; `None` marks a gap.
fn lay_out(letter: &Letter) -> Vec<Vec<(f32, Placed)>> {
    let text_width = PAGE_WIDTH - 2.0 * MARGIN;
    let mut pages: Vec<Vec<(f32, Placed)>> = vec![Vec::new()];
    let mut y = PAGE_HEIGHT - MARGIN;
    let put = |pages: &mut Vec<Vec<(f32, Placed)>>, y: &mut f32, placed: Placed, height: f32| {
        if *y - height < MARGIN {
            pages.push(Vec::new());
            *y = PAGE_HEIGHT - MARGIN;
        }
        *y -= height;
        if let Some(page) = pages.last_mut() {
            page.push((*y, placed));
        }
    };
    for block in &letter.blocks {
        match block {
            Block::Lines(lines) => {
                for line in lines {
                    for text in wrap(line, SIZE, false, text_width) {
                        put(&mut pages, &mut y, Placed { x: MARGIN, text, size: SIZE, bold: false }, LEADING);
                    }
                }
            }
            Block::Heading(text) => {
                y -= LEADING / 2.0;
                for text in wrap(text, HEADING_SIZE, true, text_width) {
                    put(&mut pages, &mut y, Placed { x: MARGIN, text, size: HEADING_SIZE, bold: true }, LEADING + 2.0);
                }
            }
            Block::Paragraph(text) => {
                for text in wrap(text, SIZE, false, text_width) {
                    put(&mut pages, &mut y, Placed { x: MARGIN, text, size: SIZE, bold: false }, LEADING);
                }
            }
            Block::List(items) => {
                for item in items {
                    for (i, text) in wrap(item, SIZE, false, text_width - 18.0).into_iter().enumerate() {
                        if i == 0 {
                            let bullet = Placed { x: MARGIN + 4.0, text: vec![0x95], size: SIZE, bold: false };
                            put(&mut pages, &mut y, bullet, LEADING);
                            if let Some((line_y, _)) = pages.last().and_then(|p| p.last()) {
                                let line_y = *line_y;
                                if let Some(page) = pages.last_mut() {
                                    page.push((line_y, Placed { x: MARGIN + 18.0, text, size: SIZE, bold: false }));
                                }
                            }
                        } else {
                            put(
                                &mut pages,
                                &mut y,
                                Placed { x: MARGIN + 18.0, text, size: SIZE, bold: false },
                                LEADING,
                            );
                        }
                    }
                }
            }
            Block::Quote(text) => {
                for text in wrap(text, SIZE - 1.0, false, text_width - 24.0) {
                    let placed = Placed { x: MARGIN + 24.0, text, size: SIZE - 1.0, bold: false };
                    put(&mut pages, &mut y, placed, LEADING - 1.0);
                }
            }
            Block::SignatureLine(label) => {
                y -= LEADING * 2.0;
                let line = Placed { x: MARGIN, text: encode(&"_".repeat(40)), size: SIZE, bold: false };
                put(&mut pages, &mut y, line, LEADING);
                let mut caption = label.clone();
                caption.push_str("          Date: ______________");
                put(
                    &mut pages,
                    &mut y,
                    Placed { x: MARGIN, text: encode(&caption), size: SIZE - 1.0, bold: false },
                    LEADING,
                );
            }
        }
        y -= LEADING / 2.0;
    }
    pages
}

/// The letter as a PDF file.
pub fn render(letter: &Letter) -> Vec<u8> {
    let pages = lay_out(letter);
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let regular = Ref::new(3);
    let bold = Ref::new(4);
    let info = Ref::new(5);
    let first_page = 6;
    let page_ids: Vec<Ref> = (0..pages.len()).map(|i| Ref::new(first_page + 2 * i as i32)).collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids(page_ids.iter().copied()).count(pages.len() as i32);
    pdf.type1_font(regular).base_font(Name(b"Helvetica")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold).base_font(Name(b"Helvetica-Bold")).encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.document_info(info).title(TextStr(&letter.title));
    for (i, lines) in pages.iter().enumerate() {
        let page_id = page_ids[i];
        let content_id = Ref::new(page_id.get() + 1);
        let mut page = pdf.page(page_id);
        page.parent(tree).media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT)).contents(content_id);
        page.resources().fonts().pair(Name(b"F1"), regular).pair(Name(b"F2"), bold);
        page.finish();
        let mut content = Content::new();
        for (y, line) in lines {
            content.begin_text();
            content.set_font(Name(if line.bold { b"F2" } else { b"F1" }), line.size);
            content.next_line(line.x, *y);
            content.show(Str(&line.text));
            content.end_text();
        }
        if pages.len() > 1 {
            let footer = encode(&format!("Page {} of {}", i + 1, pages.len()));
            content.begin_text();
            content.set_font(Name(b"F1"), 9.0);
            content.next_line(PAGE_WIDTH - MARGIN - width(&footer, 9.0, false), MARGIN / 2.0);
            content.show(Str(&footer));
            content.end_text();
        }
        pdf.stream(content_id, content.finish().as_slice());
    }
    pdf.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_wrap_within_the_margins_and_keep_every_word() {
        let text = "I ask for a copy of the following records of mine that you hold, in electronic form where you \
                    keep them electronically, within thirty days.";
        let lines = wrap(text, SIZE, false, 200.0);
        assert!(lines.len() > 2);
        for line in &lines {
            assert!(width(line, SIZE, false) <= 200.0, "{}", String::from_utf8_lossy(line));
        }
        let joined: Vec<u8> = lines.join(&b' ');
        assert_eq!(joined, encode(text));
        let long = wrap(&"x".repeat(300), SIZE, false, 100.0);
        assert!(long.iter().all(|l| width(l, SIZE, false) <= 100.0) && long.concat().len() == 300);
    }

    #[test]
    fn text_is_kept_in_the_fonts_encoding() {
        assert_eq!(encode("Café — “ok” €5"), b"Caf\xe9 \x97 \x93ok\x94 \x805".to_vec());
        assert_eq!(encode("Łódź"), b"L\xf3dz".to_vec(), "ó is in the encoding, Ł and ź are not");
        assert_eq!(encode("a\u{0}b"), b"a b".to_vec());
        let named =
            |name: &str| Letter { title: name.into(), blocks: vec![Block::Paragraph(name.into())], missing: None };
        assert!(unsupported(&named("José Müller — “Ok”")).is_empty());
        assert_eq!(unsupported(&named("王芳 王")), vec!['王', '芳']);
    }

    #[test]
    fn a_long_letter_runs_onto_more_pages_and_is_a_pdf() {
        let blocks = (0..80).map(|i| Block::Paragraph(format!("Paragraph {i} of a long letter."))).collect();
        let letter = Letter { title: "Long".into(), blocks, missing: None };
        let pages = lay_out(&letter);
        assert!(pages.len() >= 2);
        for page in &pages {
            assert!(page.iter().all(|(y, _)| *y >= MARGIN && *y <= PAGE_HEIGHT - MARGIN));
        }
        let bytes = render(&letter);
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(bytes.windows(5).any(|w| w == b"%%EOF"));
    }
}
