//! One difference between two grants of a verb ([`ScopeChange`]), as printed
//! by a permission diff, and the helpers every verb uses to build the lines
//! the same way: `+` added, `-` removed, `~` changed, then verb and field.

use std::fmt;

/// One difference between two grants of a verb, in plain words.
///
/// `line` starts with `+` (something added), `-` (something removed) or `~`
/// (a value changed), then the verb, then the field as written in toolkits:
/// `+ fetch https://api.new.example/*`, `~ fetch max_requests 10 → 100`.
/// `widens` is true when the later grant allows something the earlier did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeChange {
    /// Whether the later grant allows something the earlier one did not.
    pub widens: bool,
    /// The change in plain words.
    pub line: String,
}

impl fmt::Display for ScopeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl ScopeChange {
    /// A change that lets the tool do more.
    pub fn widening(line: impl Into<String>) -> Self {
        Self {
            widens: true,
            line: line.into(),
        }
    }

    /// A change that lets the tool do the same or less.
    pub fn narrowing(line: impl Into<String>) -> Self {
        Self {
            widens: false,
            line: line.into(),
        }
    }

    /// `~ VERB FIELD before → after` when a limit changed; raising it widens.
    pub fn limit<T: PartialOrd + fmt::Display>(
        verb: &str,
        field: &str,
        before: T,
        after: T,
    ) -> Option<Self> {
        (before != after).then(|| Self {
            widens: after > before,
            line: format!("~ {verb} {field} {before} → {after}"),
        })
    }

    /// `+ VERB NOUN item` for each item only in `after` (widening) and
    /// `- VERB NOUN item` for each only in `before` (narrowing), in list order:
    /// for lists where each item is one more thing the tool may use (keys,
    /// models, methods).
    pub fn items<T: PartialEq + fmt::Display>(
        verb: &str,
        noun: &str,
        before: &[T],
        after: &[T],
    ) -> Vec<Self> {
        let mut out: Vec<Self> = Vec::new();
        let removed = before.iter().filter(|b| !after.contains(b));
        let added = after.iter().filter(|a| !before.contains(a));
        let changes = removed
            .map(|b| Self::narrowing(format!("- {verb} {noun} {b}")))
            .chain(added.map(|a| Self::widening(format!("+ {verb} {noun} {a}"))));
        for c in changes {
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_widen_when_raised_and_say_both_values() {
        let up = ScopeChange::limit("fetch", "max_requests", 10, 100).unwrap();
        assert_eq!(up, ScopeChange::widening("~ fetch max_requests 10 → 100"));
        assert_eq!(up.to_string(), "~ fetch max_requests 10 → 100");
        let down = ScopeChange::limit("fetch", "max_requests", 100, 10).unwrap();
        assert!(!down.widens);
        assert_eq!(ScopeChange::limit("fetch", "max_requests", 7, 7), None);
    }

    #[test]
    fn items_added_widen_removed_narrow_once_each() {
        let changes = ScopeChange::items("sign", "key", &["a", "b", "b"], &["b", "c", "c"]);
        assert_eq!(
            changes,
            vec![
                ScopeChange::narrowing("- sign key a"),
                ScopeChange::widening("+ sign key c"),
            ]
        );
        assert!(ScopeChange::items("sign", "key", &["a", "b"], &["b", "a"]).is_empty());
    }
}
