//! The decoded view the scrubber also searches: JSON and JavaScript string
//! escapes (`\u0073`, `\/`, `\x73`, `\u{73}`), percent-encoding (`%2F`,
//! `%u002F`) and HTML character references (`&#47;`, `&#x2f;`, `&sol;`)
//! decoded in one linear pass, with a way back from view positions to the
//! source bytes they came from. Any mix of escaped and raw characters decodes
//! to the same view, so one search finds a secret however it was spelled.
//! Both secret scrubbers use it: fetch's reflection scrubber and complete's
//! redactor of provider texts.

use zeroize::Zeroize;

/// Decoded views searched besides the text itself (an HTML reference to a
/// JSON escape of a percent escape is three layers).
pub const MAX_LAYERS: usize = 3;

/// Bytes that can start an escape; everything else is copied as it is.
fn is_trigger(b: u8) -> bool {
    matches!(b, b'\\' | b'%' | b'&')
}

/// Named HTML character references for printable ASCII (HTML5's table), as
/// written with a `;`. Names are case-sensitive, as in HTML.
const NAMED: &[(&str, char)] = &[
    ("Tab", '\t'),
    ("NewLine", '\n'),
    ("excl", '!'),
    ("quot", '"'),
    ("QUOT", '"'),
    ("num", '#'),
    ("dollar", '$'),
    ("percnt", '%'),
    ("amp", '&'),
    ("AMP", '&'),
    ("apos", '\''),
    ("lpar", '('),
    ("rpar", ')'),
    ("ast", '*'),
    ("midast", '*'),
    ("plus", '+'),
    ("comma", ','),
    ("period", '.'),
    ("sol", '/'),
    ("colon", ':'),
    ("semi", ';'),
    ("lt", '<'),
    ("LT", '<'),
    ("equals", '='),
    ("gt", '>'),
    ("GT", '>'),
    ("quest", '?'),
    ("commat", '@'),
    ("lsqb", '['),
    ("lbrack", '['),
    ("bsol", '\\'),
    ("rsqb", ']'),
    ("rbrack", ']'),
    ("Hat", '^'),
    ("lowbar", '_'),
    ("UnderBar", '_'),
    ("grave", '`'),
    ("DiacriticalGrave", '`'),
    ("lcub", '{'),
    ("lbrace", '{'),
    ("verbar", '|'),
    ("vert", '|'),
    ("VerticalLine", '|'),
    ("rcub", '}'),
    ("rbrace", '}'),
];

/// References HTML also decodes without the `;` (legacy), as prefixes.
const LEGACY: &[(&str, char)] = &[
    ("amp", '&'),
    ("AMP", '&'),
    ("quot", '"'),
    ("QUOT", '"'),
    ("lt", '<'),
    ("LT", '<'),
    ("gt", '>'),
    ("GT", '>'),
];

/// Longest named reference looked up.
const MAX_NAME: usize = 16;

/// The value of an ASCII hex digit.
fn hex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// `n` hex digits at `at`, if all are there.
fn hex_run(src: &[u8], at: usize, n: usize) -> Option<u32> {
    let digits = src.get(at..at + n)?;
    digits
        .iter()
        .try_fold(0u32, |acc, b| acc.checked_mul(16)?.checked_add(hex(*b)?))
}

/// One escape at `src[at]` (a trigger byte): its length in the source and the
/// character or byte it stands for; `None` when it is no escape.
fn escape_at(src: &[u8], at: usize) -> Option<(usize, Unit)> {
    match src[at] {
        b'\\' => backslash(src, at),
        b'%' => percent(src, at),
        _ => reference(src, at),
    }
}

/// What one escape decodes to.
#[derive(Debug, Clone, Copy)]
enum Unit {
    /// A character, written out as UTF-8.
    Char(char),
    /// A raw byte (percent-encoding is bytes, not characters).
    Byte(u8),
}

fn backslash(src: &[u8], at: usize) -> Option<(usize, Unit)> {
    let c = match *src.get(at + 1)? {
        b'u' if src.get(at + 2) == Some(&b'{') => {
            // Any number of leading zeros, as JavaScript allows (bounded).
            let len = src[at + 3..].iter().take(17).position(|b| *b == b'}')?;
            if len == 0 {
                return None;
            }
            let code = hex_run(src, at + 3, len)?;
            return Some((len + 4, Unit::Char(char::from_u32(code)?)));
        }
        b'u' => {
            let code = hex_run(src, at + 2, 4)?;
            if (0xD800..0xDC00).contains(&code) {
                // A high surrogate counts only with its low half.
                if src.get(at + 6..at + 8) != Some(b"\\u") {
                    return None;
                }
                let low = hex_run(src, at + 8, 4)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return None;
                }
                let c = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                return Some((12, Unit::Char(char::from_u32(c)?)));
            }
            return Some((6, Unit::Char(char::from_u32(code)?)));
        }
        b'x' => return Some((4, Unit::Char(char::from_u32(hex_run(src, at + 2, 2)?)?))),
        b'/' => '/',
        b'\\' => '\\',
        b'"' => '"',
        b'\'' => '\'',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        _ => return None,
    };
    Some((2, Unit::Char(c)))
}

fn percent(src: &[u8], at: usize) -> Option<(usize, Unit)> {
    if matches!(src.get(at + 1), Some(b'u' | b'U')) {
        let code = hex_run(src, at + 2, 4)?;
        return Some((6, Unit::Char(char::from_u32(code)?)));
    }
    let byte = hex_run(src, at + 1, 2)?;
    Some((3, Unit::Byte(u8::try_from(byte).ok()?)))
}

/// `&#DDD;`, `&#xHH;` (the `;` optional, leading zeros allowed) and names.
fn reference(src: &[u8], at: usize) -> Option<(usize, Unit)> {
    if src.get(at + 1) == Some(&b'#') {
        let (radix, start) = match src.get(at + 2) {
            Some(b'x' | b'X') => (16, at + 3),
            _ => (10, at + 2),
        };
        let digits = src[start..]
            .iter()
            .take_while(|b| char::from(**b).is_digit(radix))
            .count();
        if digits == 0 {
            return None;
        }
        let mut code: u32 = 0;
        for b in &src[start..start + digits] {
            let d = char::from(*b).to_digit(radix)?;
            code = code.checked_mul(radix)?.checked_add(d)?;
        }
        let end = start + digits;
        let len = end - at + usize::from(src.get(end) == Some(&b';'));
        return Some((len, Unit::Char(char::from_u32(code)?)));
    }
    let name_len = src[at + 1..]
        .iter()
        .take(MAX_NAME)
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    let name = &src[at + 1..at + 1 + name_len];
    if src.get(at + 1 + name_len) == Some(&b';')
        && let Some((_, c)) = NAMED.iter().find(|(n, _)| n.as_bytes() == name)
    {
        return Some((name_len + 2, Unit::Char(*c)));
    }
    LEGACY
        .iter()
        .find(|(n, _)| name.starts_with(n.as_bytes()))
        .map(|(n, c)| (n.len() + 1, Unit::Char(*c)))
}

/// Walks `src` as a sequence of pieces: `f(src_start, src_end, decoded,
/// literal)` for each run of plain bytes (`literal`, decoded == source) and
/// each escape.
fn walk(src: &[u8], mut f: impl FnMut(usize, usize, &[u8], bool)) {
    let mut i = 0;
    let mut buf = [0u8; 4];
    while i < src.len() {
        let run = src[i..]
            .iter()
            .position(|b| is_trigger(*b))
            .unwrap_or(src.len() - i);
        if run > 0 {
            f(i, i + run, &src[i..i + run], true);
            i += run;
            continue;
        }
        match escape_at(src, i) {
            Some((len, unit)) => {
                let out: &[u8] = match unit {
                    Unit::Char(c) => c.encode_utf8(&mut buf).as_bytes(),
                    Unit::Byte(b) => {
                        buf[0] = b;
                        &buf[..1]
                    }
                };
                f(i, i + len, out, false);
                i += len;
            }
            None => {
                f(i, i + 1, &src[i..i + 1], true);
                i += 1;
            }
        }
    }
}

/// `src` with every escape decoded, or `None` when it holds none.
pub fn decode(src: &[u8]) -> Option<Vec<u8>> {
    src.iter().position(|b| is_trigger(*b))?;
    let mut out = Vec::with_capacity(src.len());
    let mut changed = false;
    walk(src, |_, _, bytes, literal| {
        out.extend_from_slice(bytes);
        changed |= !literal;
    });
    changed.then_some(out)
}

/// Where `find` hits in `text` as written and in each decoded view of it (up
/// to [`MAX_LAYERS`] deep), as ranges of `text` (a hit in a view covers the
/// escapes that spell it), sorted, with overlapping or touching ranges merged.
/// The views are zeroized before they are dropped: they may spell a secret.
pub fn find_in_views(
    text: &[u8],
    mut find: impl FnMut(&[u8], &mut Vec<(usize, usize)>),
) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    find(text, &mut ranges);
    let mut layers: Vec<Vec<u8>> = Vec::new();
    while layers.len() < MAX_LAYERS {
        let below = layers.last().map_or(text, Vec::as_slice);
        let Some(view) = decode(below) else {
            break;
        };
        let mut found = Vec::new();
        find(&view, &mut found);
        layers.push(view);
        if found.is_empty() {
            continue;
        }
        for depth in (0..layers.len()).rev() {
            let source = if depth == 0 { text } else { &layers[depth - 1] };
            map_back(source, &mut found);
        }
        ranges.extend(found);
    }
    for layer in &mut layers {
        layer.zeroize();
    }
    ranges.sort_unstable();
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// `text` with each of `ranges` (sorted, disjoint, as [`find_in_views`]
/// returns them) replaced by `marker`.
pub fn replace_ranges(text: &[u8], ranges: &[(usize, usize)], marker: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    for &(start, end) in ranges {
        out.extend_from_slice(&text[at..start]);
        out.extend_from_slice(marker);
        at = end;
    }
    out.extend_from_slice(&text[at..]);
    out
}

/// Maps byte ranges of `decode(src)` back to the ranges of `src` they were
/// decoded from (an escape cut by a range is taken whole). `ranges` must be
/// sorted by start; each comes back in place.
pub fn map_back(src: &[u8], ranges: &mut [(usize, usize)]) {
    if ranges.is_empty() {
        return;
    }
    // Every start (first byte) and end (last byte) to translate, in view order.
    let mut points: Vec<(usize, bool, usize)> = Vec::with_capacity(ranges.len() * 2);
    for (i, (s, e)) in ranges.iter().enumerate() {
        points.push((*s, false, i));
        points.push((e.saturating_sub(1).max(*s), true, i));
    }
    points.sort_unstable();
    let mut next = 0;
    let mut view = 0;
    walk(src, |ss, se, bytes, literal| {
        let ve = view + bytes.len();
        while let Some(&(p, last, i)) = points.get(next) {
            if p >= ve {
                break;
            }
            let mapped = match (literal, last) {
                (true, false) => ss + (p - view),
                (true, true) => ss + (p - view) + 1,
                (false, false) => ss,
                (false, true) => se,
            };
            if last {
                ranges[i].1 = mapped;
            } else {
                ranges[i].0 = mapped;
            }
            next += 1;
        }
        view = ve;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(text: &str) -> String {
        String::from_utf8(decode(text.as_bytes()).unwrap_or_else(|| text.as_bytes().to_vec()))
            .unwrap()
    }

    #[test]
    fn every_escape_family_decodes_in_any_case_and_mix() {
        for (spelled, plain) in [
            (r"a\u002Fb\u002bc\/d", "a/b+c/d"),
            (r"\u0073\u0033", "s3"),
            (r"\uD83D\uDE00!", "\u{1F600}!"),
            (r"\x2F\u{2b}", "/+"),
            (r"\u{000000002b}\u{FFFFFFFFF}", "+\\u{FFFFFFFFF}"),
            ("%2F%2b%u002B", "/++"),
            ("&#47;&#0043;&#x2F;&#X2b;&#x0000002b", "/+/++"),
            ("&plus;&sol;&equals;&amp;&AMP;&ampx", "+/=&&&x"),
            (
                "&plus &unknown; &#; % \\q \\u12 &#x;",
                "&plus &unknown; &#; % \\q \\u12 &#x;",
            ),
            (r"\uD83D alone", r"\uD83D alone"),
        ] {
            assert_eq!(view(spelled), plain, "{spelled}");
        }
        assert_eq!(decode(b"nothing to see"), None);
        assert_eq!(decode(b"100% sure"), None);
    }

    #[test]
    fn view_ranges_map_back_to_whole_escapes() {
        let src = br"xx\u0061b&#x63;dyy";
        let v = decode(src).unwrap();
        assert_eq!(v, b"xxabcdyy");
        let mut ranges = [(2, 6), (0, 1), (3, 4)];
        ranges.sort_unstable();
        map_back(src, &mut ranges);
        // "x" -> "x"; "abcd" -> `\u0061b&#x63;d`; "b" -> "b".
        assert_eq!(ranges, [(0, 1), (2, 16), (8, 9)]);
    }
}
