//! Which files are accepted, decided from their first bytes, never from
//! their names: a program renamed `scan.pdf` is still a program. And what a
//! file may be called once it is stored.

/// Bytes read before deciding what a file is.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// What a file's first bytes say it is, if it is a kind that is accepted:
/// its media type. `name` only tells CSV from other plain text.
pub fn accepted_type(first_bytes: &[u8], name: &str) -> Option<&'static str> {
    if let Some(found) = infer::get(first_bytes) {
        return ACCEPTED.iter().find(|t| **t == found.mime_type()).copied();
    }
    if looks_like_text(first_bytes) {
        let csv = name.rsplit_once('.').is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("csv"));
        return Some(if csv { "text/csv" } else { "text/plain" });
    }
    None
}

/// The media types accepted: documents, scans and imaging.
const ACCEPTED: &[&str] = &[
    "application/pdf",
    "image/jpeg",
    "image/png",
    "image/tiff",
    "image/heif",
    "image/heic",
    "application/dicom",
    "application/zip",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/rtf",
];

/// The kinds a browser shows safely inside a sandboxed frame.
pub fn viewable(content_type: &str) -> bool {
    matches!(content_type, "application/pdf" | "image/jpeg" | "image/png")
}

/// UTF-8 text without control characters other than tabs and line breaks
/// (a character cut at the end of the sample does not count against it).
fn looks_like_text(sample: &[u8]) -> bool {
    if sample.is_empty() {
        return true;
    }
    let text = match std::str::from_utf8(sample) {
        Ok(text) => text,
        Err(err) if err.error_len().is_none() && sample.len() - err.valid_up_to() < 4 => {
            std::str::from_utf8(&sample[..err.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    text.chars().all(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

/// Longest stored name, in characters.
const LONGEST_NAME: usize = 120;

/// A file name safe to store and to send back: the last part of any path,
/// without control characters or characters file systems refuse, spaces
/// collapsed, at most [`LONGEST_NAME`] characters keeping the extension;
/// "document" when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let kept: String = base
        .chars()
        .map(|c| if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') { ' ' } else { c })
        .collect();
    let mut name = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    name = name.trim_matches(|c: char| c == '.' || c == ' ').to_string();
    if name.chars().count() > LONGEST_NAME {
        let (stem, ext) = match name.rsplit_once('.') {
            Some((stem, ext)) if !ext.is_empty() && ext.chars().count() <= 10 => (stem.to_string(), format!(".{ext}")),
            _ => (name.clone(), String::new()),
        };
        let keep = LONGEST_NAME - ext.chars().count();
        name = stem.chars().take(keep).collect::<String>().trim_end().to_string() + &ext;
    }
    if name.is_empty() { "document".to_string() } else { name }
}

/// `Content-Disposition` for sending `name`: a plain-ASCII fallback and the
/// exact name percent-encoded (RFC 6266).
pub fn disposition(kind: &str, name: &str) -> String {
    let fallback: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_known_by_their_bytes_not_their_names() {
        assert_eq!(accepted_type(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "scan.pdf"), Some("application/pdf"));
        assert_eq!(accepted_type(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "x.bin"), Some("image/png"));
        assert_eq!(accepted_type(b"PK\x03\x04\x14\0\0\0\0\0", "imaging.zip"), Some("application/zip"));
        let mut dicom = vec![0u8; 128];
        dicom.extend_from_slice(b"DICM\x02\0\0\0");
        assert_eq!(accepted_type(&dicom, "IM0001"), Some("application/dicom"));
        // Programs, whatever they are called.
        assert_eq!(accepted_type(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0", "results.pdf"), None);
        assert_eq!(accepted_type(b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0", "results.pdf"), None);
        assert_eq!(accepted_type(b"\0\x01\x02garbage\xff\xfe", "notes.txt"), None);
        // Text, and CSV by its name.
        assert_eq!(accepted_type("Hémoglobine 13,5 g/dL\n".as_bytes(), "labs.txt"), Some("text/plain"));
        assert_eq!(accepted_type(b"date,test,value\n2026-01-02,HbA1c,6.1\n", "labs.CSV"), Some("text/csv"));
        // A multi-byte character cut at the end of the sample is still text.
        let sample = "ééé".as_bytes();
        assert_eq!(accepted_type(&sample[..5], "a.txt"), Some("text/plain"));
        assert!(viewable("application/pdf") && !viewable("text/plain") && !viewable("image/tiff"));
    }

    #[test]
    fn names_are_cleaned_and_bounded() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\MRI report.pdf"), "MRI report.pdf");
        assert_eq!(clean_name("  bad\u{0}name\r\n?.pdf "), "bad name .pdf");
        assert_eq!(clean_name("..."), "document");
        assert_eq!(clean_name(""), "document");
        let long = format!("{}.pdf", "a".repeat(300));
        let cleaned = clean_name(&long);
        assert_eq!(cleaned.chars().count(), LONGEST_NAME);
        assert!(cleaned.ends_with(".pdf"));
        assert_eq!(
            disposition("attachment", "Résumé \"final\".pdf"),
            "attachment; filename=\"R_sum_ _final_.pdf\"; filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.pdf"
        );
    }
}
