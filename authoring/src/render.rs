//! A tiny template renderer for the project files: `{{key}}` is replaced by
//! a value, and lines between `{{#flag}}` and `{{/flag}}` (each alone on its
//! line) are kept only when the flag is set (`{{^flag}}` keeps them when it is
//! not). Sections may nest. Nothing else is special, so a template reads as
//! the file it becomes.

use std::collections::BTreeMap;

/// The values and flags one project's templates are rendered with.
#[derive(Debug, Default)]
pub(crate) struct Context {
    values: BTreeMap<&'static str, String>,
    flags: BTreeMap<&'static str, bool>,
}

impl Context {
    /// Sets `{{key}}` to `value`.
    pub(crate) fn value(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.values.insert(key, value.into());
        self
    }

    /// Sets the section flag `key`.
    pub(crate) fn flag(&mut self, key: &'static str, on: bool) -> &mut Self {
        self.flags.insert(key, on);
        self
    }

    /// `template` rendered. Panics on an unknown key or an unbalanced
    /// section: templates are part of this crate and its tests render each.
    pub(crate) fn render(&self, name: &str, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        // One entry per open section: whether its lines are kept.
        let mut open: Vec<(&str, bool)> = Vec::new();
        for line in template.split_inclusive('\n') {
            let tag = line.trim();
            if let Some((negated, key)) = section_start(tag) {
                let on = *self
                    .flags
                    .get(key)
                    .unwrap_or_else(|| panic!("template {name}: unknown flag `{key}`"));
                open.push((key, on != negated));
                continue;
            }
            if let Some(key) = tag.strip_prefix("{{/").and_then(|t| t.strip_suffix("}}")) {
                let (started, _) = open
                    .pop()
                    .unwrap_or_else(|| panic!("template {name}: `{tag}` closes nothing"));
                assert_eq!(started, key, "template {name}: `{tag}` closes `{started}`");
                continue;
            }
            if open.iter().all(|(_, keep)| *keep) {
                out.push_str(&self.substitute(name, line));
            }
        }
        assert!(open.is_empty(), "template {name}: unclosed {open:?}");
        out
    }

    fn substitute(&self, name: &str, line: &str) -> String {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .unwrap_or_else(|| panic!("template {name}: unclosed `{{{{` in {line:?}"));
            let key = &after[..end];
            let value = self
                .values
                .get(key)
                .unwrap_or_else(|| panic!("template {name}: unknown value `{key}`"));
            out.push_str(value);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// `{{#key}}` as `(false, key)`, `{{^key}}` as `(true, key)`.
fn section_start(tag: &str) -> Option<(bool, &str)> {
    let inner = tag.strip_prefix("{{")?.strip_suffix("}}")?;
    if let Some(key) = inner.strip_prefix('#') {
        Some((false, key))
    } else {
        inner.strip_prefix('^').map(|key| (true, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context {
        let mut c = Context::default();
        c.value("name", "hello").flag("on", true).flag("off", false);
        c
    }

    #[test]
    fn values_and_sections() {
        let t = "a {{name}} b\n{{#on}}\nkept {{name}}\n{{#off}}\ndropped\n{{/off}}\n{{/on}}\n\
                 {{^off}}\nnegated\n{{/off}}\n{{#off}}\nnever\n{{/off}}\nend";
        assert_eq!(
            context().render("t", t),
            "a hello b\nkept hello\nnegated\nend"
        );
    }

    #[test]
    #[should_panic(expected = "unknown value `nope`")]
    fn an_unknown_value_is_a_bug() {
        context().render("t", "{{nope}}");
    }

    #[test]
    #[should_panic(expected = "unclosed")]
    fn an_unclosed_section_is_a_bug() {
        context().render("t", "{{#on}}\nx\n");
    }
}
