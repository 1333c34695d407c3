//! The shapes a leaked secret can take, searched for beside its plain bytes:
//! JSON-escaped (as serde_json writes it, with `\/`, and ASCII-only with
//! `\uXXXX` in either case), percent-encoded, hex (lower and upper case),
//! base64 (standard and URL-safe alphabets, with and without padding) and —
//! because base64 of a larger buffer encodes the secret differently
//! depending on where it starts — the characters that encode nothing but
//! the secret, at each of the three byte alignments.
//!
//! Written by hand, independent of any encoder the code under test uses,
//! and checked against RFC 4648's test vectors. Shared with the end-to-end
//! canary search (`crates/cairn/tests/it/secrets_cli.rs`, by `#[path]`), so
//! it uses nothing but `std`.

use std::fmt::Write;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A secret's forms, each named.
pub struct Forms(Vec<(String, Vec<u8>)>);

impl Forms {
    pub fn of(secret: &str) -> Forms {
        let bytes = secret.as_bytes();
        let mut forms: Vec<(String, String)> = vec![
            ("plain".into(), secret.into()),
            ("JSON".into(), json(secret, false, false, false)),
            ("JSON with \\/".into(), json(secret, true, false, false)),
            ("ASCII JSON".into(), json(secret, false, true, false)),
            (
                "ASCII JSON, upper-case \\u".into(),
                json(secret, false, true, true),
            ),
            ("percent-encoded".into(), percent(bytes)),
            ("hex".into(), hex(bytes, false)),
            ("HEX".into(), hex(bytes, true)),
        ];
        for (alphabet, name) in [(STANDARD, "base64"), (URL_SAFE, "base64url")] {
            forms.push((name.into(), base64(bytes, alphabet, true)));
            forms.push((format!("{name} unpadded"), base64(bytes, alphabet, false)));
            for offset in 0..3 {
                forms.push((
                    format!("{name} at offset {offset}"),
                    base64_core(bytes, offset, alphabet),
                ));
            }
        }
        let mut unique: Vec<(String, Vec<u8>)> = Vec::new();
        for (name, form) in forms {
            assert!(
                form.len() >= 16,
                "{name} of the canary is too short to search for"
            );
            if !unique.iter().any(|(_, f)| *f == form.as_bytes()) {
                unique.push((name, form.into_bytes()));
            }
        }
        Forms(unique)
    }

    /// The names of the forms `haystack` contains.
    pub fn found_in(&self, haystack: &[u8]) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(_, f)| haystack.windows(f.len()).any(|w| w == f.as_slice()))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    /// How many distinct forms are searched for.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// `s` as the inside of a JSON string: `"`, `\` and control characters
/// escaped; optionally `/` too, and everything beyond ASCII as UTF-16 `\u`
/// escapes (lower- or upper-case hex).
fn json(s: &str, slash: bool, ascii: bool, upper: bool) -> String {
    let mut out = String::new();
    let u = |out: &mut String, unit: u16| {
        if upper {
            write!(out, "\\u{unit:04X}").unwrap();
        } else {
            write!(out, "\\u{unit:04x}").unwrap();
        }
    };
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' if slash => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => u(&mut out, c as u16),
            c if ascii && !c.is_ascii() => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    u(&mut out, *unit);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

fn hex(bytes: &[u8], upper: bool) -> String {
    let mut out = String::new();
    for b in bytes {
        if upper {
            write!(out, "{b:02X}").unwrap();
        } else {
            write!(out, "{b:02x}").unwrap();
        }
    }
    out
}

/// RFC 4648 base64 of `bytes` in `alphabet`.
fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The characters of any base64 text (in `alphabet`) that encode only
/// `bytes`, when `bytes` start `offset` (0, 1 or 2) bytes into a 3-byte
/// group: what the text contains whatever comes before and after.
fn base64_core(bytes: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
    let mut buf = vec![0u8; offset];
    buf.extend_from_slice(bytes);
    let text = base64(&buf, alphabet, false);
    // Character i holds bits 6i..6i+6 of the buffer; the secret's bits are
    // 8·offset..8·(offset+len).
    let first = (4 * offset).div_ceil(3);
    let end = 4 * (offset + bytes.len()) / 3;
    text[first..end].to_owned()
}

#[test]
fn the_encoders_agree_with_rfc_4648_and_the_cores_with_any_surroundings() {
    for (plain, encoded) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(plain.as_bytes(), STANDARD, true), encoded);
        assert_eq!(
            base64(plain.as_bytes(), STANDARD, false),
            encoded.trim_end_matches('=')
        );
        assert_eq!(hex(plain.as_bytes(), false), {
            let mut h = String::new();
            for b in plain.bytes() {
                write!(h, "{b:02x}").unwrap();
            }
            h
        });
    }
    assert_eq!(base64(&[0xfb, 0xff], STANDARD, true), "+/8=");
    assert_eq!(base64(&[0xfb, 0xff], URL_SAFE, true), "-_8=");
    assert_eq!(hex(&[0xab, 0x01], true), "AB01");
    assert_eq!(
        json("a\"b\\c/é\u{1}", false, false, false),
        "a\\\"b\\\\c/é\\u0001"
    );
    assert_eq!(json("/é😀", true, true, true), "\\/\\u00E9\\uD83D\\uDE00");
    assert_eq!(percent(b"a b/\xc3\xa9"), "a%20b%2F%C3%A9");
    let secret = b"canary-\x00\xff\x10-bytes";
    for before in [&b""[..], b"x", b"xy", b"xyz", b"\xff\xfe\xfd\xfc"] {
        for after in [&b""[..], b"!", b"!?", b"\x00\x00\x00"] {
            let mut buf = before.to_vec();
            buf.extend_from_slice(secret);
            buf.extend_from_slice(after);
            for alphabet in [STANDARD, URL_SAFE] {
                let text = base64(&buf, alphabet, true);
                let core = base64_core(secret, before.len() % 3, alphabet);
                assert!(text.contains(&core), "{text} lacks {core}");
            }
        }
    }
}
