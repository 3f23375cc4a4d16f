//! Reflection scrubbing: a server may echo a credential the host attached (in
//! a header, a JSON body, a base64 blob, a redirect URL, an HTML page). Before
//! anything goes back to the tool, every spelling of every secret the grant's
//! credentials use is replaced by `[REDACTED]`: the fixed spellings (raw,
//! base64 at every alignment, hex in any case) are searched in the text as it
//! came and in its decoded views ([`airlock_core::unescape`]: JSON, JavaScript,
//! percent and HTML escapes, in any case and any mix, up to three layers
//! deep), and each hit is redacted where it lies in the original bytes. One
//! Aho-Corasick pass per view keeps the scan linear in the text's length.

use aho_corasick::AhoCorasick;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_encode};
use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use airlock_core::unescape;

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

/// The spellings to remove, compiled into two automata: exact (raw, base64,
/// decoded forms) and ASCII-case-insensitive (hex). The needle bytes are
/// zeroized on drop; the automata's own tables cannot be, and live no longer
/// than the grant they were built for.
#[derive(Default)]
pub struct Scrubber {
    exact: Option<AhoCorasick>,
    folded: Option<AhoCorasick>,
    needles: usize,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("needles", &self.needles)
            .finish()
    }
}

/// An automaton over `needles` (then zeroized), `None` when there are none.
fn automaton(needles: &mut Vec<Vec<u8>>, fold: bool) -> Option<AhoCorasick> {
    needles.sort_unstable();
    needles.dedup();
    let built = (!needles.is_empty()).then(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(fold)
            .build(needles.iter())
            .expect("a few short literal needles always build")
    });
    for n in needles.iter_mut() {
        n.zeroize();
    }
    built
}

impl Scrubber {
    /// Scrubs each value (a raw secret, a formatted header value) in every
    /// spelling: raw, standard and URL-safe base64 (at all three byte
    /// alignments), hex (any case), percent-encoded with `+` for space, and,
    /// through the decoded views, every JSON, JavaScript, percent or HTML
    /// escaping of any of its characters.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut exact: Vec<Vec<u8>> = Vec::new();
        let mut folded: Vec<Vec<u8>> = Vec::new();
        for v in values.into_iter().filter(|v| !v.is_empty()) {
            exact.push(v.to_vec());
            // A value that itself holds escapes is found in the views as
            // they decode it.
            let mut layer = Zeroizing::new(v.to_vec());
            for _ in 0..unescape::MAX_LAYERS {
                let Some(decoded) = unescape::decode(&layer) else {
                    break;
                };
                layer = Zeroizing::new(decoded);
                exact.push(layer.to_vec());
            }
            for (label, mut n) in spellings(v) {
                if n.len() < MIN_DERIVED {
                    n.zeroize();
                } else if label.eq_ignore_ascii_case("hex") {
                    folded.push(n);
                } else {
                    exact.push(n);
                }
            }
        }
        let needles = exact.len() + folded.len();
        Self {
            exact: automaton(&mut exact, false),
            folded: automaton(&mut folded, true),
            needles,
        }
    }

    /// Every hit of a needle in `text`, as byte ranges.
    fn hits(&self, text: &[u8], out: &mut Vec<(usize, usize)>) {
        for ac in [&self.exact, &self.folded].into_iter().flatten() {
            out.extend(ac.find_overlapping_iter(text).map(|m| (m.start(), m.end())));
        }
    }

    /// `data` with every occurrence replaced, and how many there were
    /// (overlapping or touching hits count once).
    pub fn scrub(&self, data: &[u8]) -> (Vec<u8>, usize) {
        if self.needles == 0 {
            return (data.to_vec(), 0);
        }
        // One run of overlapping or touching hits becomes one redaction.
        let ranges = unescape::find_in_views(data, |text, out| self.hits(text, out));
        (
            unescape::replace_ranges(data, &ranges, REDACTED),
            ranges.len(),
        )
    }

    /// [`Scrubber::scrub`] for text (guest-visible errors, URLs, header values).
    pub fn scrub_str(&self, text: &str) -> (String, usize) {
        if self.needles == 0 {
            return (text.to_string(), 0);
        }
        let (bytes, count) = self.scrub(text.as_bytes());
        (String::from_utf8_lossy(&bytes).into_owned(), count)
    }
}

/// The scrubber for a grant's credentials: each raw secret and each formatted
/// header value.
pub(crate) fn for_credentials(rules: &[crate::credential::CredentialRule]) -> Scrubber {
    let mut values: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for rule in rules {
        values.push(Zeroizing::new(rule.cred.secret.expose_secret().to_vec()));
        values.push(rule.cred.value());
    }
    Scrubber::new(values.iter().map(|v| v.as_slice()))
}

/// Every derived spelling of `v` (all but the raw bytes), each with a label
/// saying which: standard and URL-safe base64, whole (`base64`, `base64url`)
/// and as embedded at each byte offset in a longer text (`base64+1`, ...);
/// percent-encoded (`percent`, `percent-lower`, `percent-plus`, and the same
/// with `-component` for `encodeURIComponent`'s set); hex (`hex`, `HEX`);
/// JSON-escaped (`json`: `\/`; `json-u`, `json-U`: every byte as `\u00xx`);
/// HTML references for every byte (`html-dec`, `html-hex`, `html-HEX`) or by
/// name where one exists (`html-named`). The scrubber removes these, and any
/// mix of escaped and raw characters, from what a tool gets back; the wall
/// tests search guest memory and audit trails for them.
pub fn spellings(v: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    base64_forms(v, &mut out);
    percent_forms(v, &mut out);
    out.push(("hex", each_byte(v, |b| format!("{b:02x}"))));
    out.push(("HEX", each_byte(v, |b| format!("{b:02X}"))));
    out.push(("json", json_escaped(v)));
    out.push(("json-u", each_byte(v, |b| format!("\\u{b:04x}"))));
    out.push(("json-U", each_byte(v, |b| format!("\\u{b:04X}"))));
    out.push(("html-dec", each_byte(v, |b| format!("&#{b};"))));
    out.push(("html-hex", each_byte(v, |b| format!("&#x{b:x};"))));
    out.push(("html-HEX", each_byte(v, |b| format!("&#X{b:X};"))));
    out.push((
        "html-named",
        each_byte(v, |b| match b {
            b'+' => "&plus;".into(),
            b'/' => "&sol;".into(),
            b'=' => "&equals;".into(),
            b'&' => "&amp;".into(),
            b => char::from(b).to_string(),
        }),
    ));
    out
}

/// `v` with each byte written by `f`.
fn each_byte(v: &[u8], f: impl Fn(u8) -> String) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 6);
    for &b in v {
        out.extend_from_slice(f(b).as_bytes());
    }
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
