//! Reflection scrubbing: a server may echo a credential the host attached (in
//! a header, a JSON body, a base64 blob, a redirect URL). Before anything goes
//! back to the tool, every known spelling of every secret the grant's
//! credentials use is replaced by `[REDACTED]`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use zeroize::{Zeroize, Zeroizing};

/// What replaces each secret occurrence.
pub const REDACTED: &[u8] = b"[REDACTED]";

/// Derived spellings shorter than this are not scrubbed (they would redact
/// unrelated text); the raw value is always scrubbed.
const MIN_DERIVED: usize = 8;

/// Characters `encodeURIComponent` leaves alone, plus `!*'()` it also keeps.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The spellings to remove, longest first; zeroized on drop.
#[derive(Default)]
pub struct Scrubber {
    needles: Vec<Vec<u8>>,
    first: Vec<bool>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("needles", &self.needles.len())
            .finish()
    }
}

impl Drop for Scrubber {
    fn drop(&mut self) {
        for n in &mut self.needles {
            n.zeroize();
        }
    }
}

impl Scrubber {
    /// Scrubs each value (a raw secret, a formatted header value) in every
    /// spelling: raw, standard and URL-safe base64 (at all three byte
    /// alignments), percent-encoded (upper and lower hex, `+` for space) and
    /// JSON-escaped.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for v in values.into_iter().filter(|v| !v.is_empty()) {
            needles.push(v.to_vec());
            for (_, mut n) in spellings(v) {
                if n.len() >= MIN_DERIVED {
                    needles.push(n);
                } else {
                    n.zeroize();
                }
            }
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        let mut first = vec![false; 256];
        for n in &needles {
            if let Some(b) = n.first() {
                first[usize::from(*b)] = true;
            }
        }
        Self { needles, first }
    }

    /// `data` with every occurrence replaced, and how many there were.
    pub fn scrub(&self, data: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(data.len());
        let mut count = 0;
        let mut i = 0;
        'scan: while let Some(&b) = data.get(i) {
            if self.first[usize::from(b)] {
                for n in &self.needles {
                    if data[i..].starts_with(n) {
                        out.extend_from_slice(REDACTED);
                        i += n.len();
                        count += 1;
                        continue 'scan;
                    }
                }
            }
            out.push(b);
            i += 1;
        }
        (out, count)
    }

    /// [`Scrubber::scrub`] for text (guest-visible errors, URLs, header values).
    pub fn scrub_str(&self, text: &str) -> (String, usize) {
        if self.needles.is_empty() {
            return (text.to_string(), 0);
        }
        let (bytes, count) = self.scrub(text.as_bytes());
        (String::from_utf8_lossy(&bytes).into_owned(), count)
    }
}

/// Every derived spelling of `v` (all but the raw bytes), each with a label
/// saying which: standard and URL-safe base64, whole (`base64`, `base64url`)
/// and as embedded at each byte offset in a longer text (`base64+1`, ...);
/// percent-encoded (`percent`, `percent-lower`, `percent-plus`, and the same
/// with `-component` for `encodeURIComponent`'s set); JSON-escaped (`json`).
/// The scrubber removes these from what a tool gets back; the wall tests
/// search guest memory for them.
pub fn spellings(v: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    base64_forms(v, &mut out);
    percent_forms(v, &mut out);
    out.push(("json", json_escaped(v)));
    out
}

/// Whole-value encodings, and for values embedded in a longer encoded text,
/// the characters that depend only on the value at each of the three
/// possible byte offsets.
fn base64_forms(v: &[u8], out: &mut Vec<(&'static str, Vec<u8>)>) {
    const LABELS: [[&str; 4]; 2] = [
        ["base64", "base64+0", "base64+1", "base64+2"],
        ["base64url", "base64url+0", "base64url+1", "base64url+2"],
    ];
    for (engine, labels) in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD].into_iter().zip(LABELS) {
        out.push((labels[0], engine.encode(v).into_bytes()));
        for shift in 0..3usize {
            let mut shifted = Zeroizing::new(vec![0u8; shift]);
            shifted.extend_from_slice(v);
            let encoded = Zeroizing::new(engine.encode(shifted.as_slice()).into_bytes());
            // Characters mixing in bits of the unknown neighbours are cut.
            let skip = [0, 2, 3][shift];
            let cut_tail = usize::from(shifted.len() % 3 != 0);
            if encoded.len() > skip + cut_tail {
                out.push((
                    labels[shift + 1],
                    encoded[skip..encoded.len() - cut_tail].to_vec(),
                ));
            }
        }
    }
}

fn percent_forms(v: &[u8], out: &mut Vec<(&'static str, Vec<u8>)>) {
    const LABELS: [[&str; 3]; 2] = [
        ["percent", "percent-lower", "percent-plus"],
        [
            "percent-component",
            "percent-component-lower",
            "percent-component-plus",
        ],
    ];
    for (set, [upper_l, lower_l, plus_l]) in [NON_ALPHANUMERIC, COMPONENT].into_iter().zip(LABELS) {
        let upper = percent_encode(v, set).to_string().into_bytes();
        let mut lower = upper.clone();
        let mut i = 0;
        while i < lower.len() {
            if lower[i] == b'%' {
                for c in lower.iter_mut().skip(i + 1).take(2) {
                    c.make_ascii_lowercase();
                }
                i += 3;
            } else {
                i += 1;
            }
        }
        let plus = String::from_utf8_lossy(&upper)
            .replace("%20", "+")
            .into_bytes();
        out.extend([(upper_l, upper), (lower_l, lower), (plus_l, plus)]);
    }
}

fn json_escaped(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    for &b in v {
        match b {
            b'/' => out.extend_from_slice(b"\\/"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b => out.push(b),
        }
    }
    out
}
