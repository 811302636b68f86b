//! Text renderings shared by several commands, and the one function through which text that
//! someone else wrote reaches the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::Value;
use vault_core::is_steering_char;

/// Text that someone else wrote (a peer's purpose or reason, a friend's review, a petname, a
/// value imported from a file), made safe to print: every character that could steer a
/// terminal (control characters such as newline and escape, bidirectional overrides and
/// isolates, line and paragraph separators) is shown as a visible escape, as `ls` and `git`
/// quote odd file names: `\n`, `\r`, `\t`, `\e`, otherwise `\u{202e}`. Printable text in any
/// script is kept as it is. Nobody can move the cursor, hide text or forge a line. `--json`
/// output does not go through here: JSON escapes these characters itself and stays exact.
pub(crate) fn untrusted(text: &str) -> Cow<'_, str> {
    // Printable ASCII holds no steering character: the common case, checked byte by byte (a
    // feed prints a few hundred thousand of these).
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) || !text.chars().any(is_steering_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x1b' => out.push_str("\\e"),
            c if is_steering_char(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`untrusted`] for an optional text.
pub(crate) fn untrusted_or<'a>(text: Option<&'a str>, default: &'a str) -> Cow<'a, str> {
    untrusted(text.unwrap_or(default))
}

/// Flattens a JSON object into `a.b: value` lines, sorted by key.
pub(crate) fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        Value::Array(items) => out.push((
            prefix.to_owned(),
            items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(", "),
        )),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

/// `key: value` lines, keys and values neutralised with [`untrusted`] (the values may come from
/// a peer or from an imported file).
pub(crate) fn key_values(value: &Value) -> String {
    let mut lines = Vec::new();
    flatten("", value, &mut lines);
    lines.iter().map(|(k, v)| format!("{}: {}", untrusted(k), untrusted(v))).collect::<Vec<_>>().join("\n")
}

/// A rating of 0 to 5 as every command prints it: `****.` for 4.
pub(crate) fn stars(rating: i64) -> String {
    let n = rating.clamp(0, 5) as usize;
    format!("{}{}", "*".repeat(n), ".".repeat(5 - n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        let forged = "delivery\n  fields: profile.email\n\x1b[8m";
        assert_eq!(untrusted(forged), "delivery\\n  fields: profile.email\\n\\e[8m");
        assert_eq!(untrusted("a\rb\tc\0d\u{7f}e\u{9b}f"), "a\\rb\\tc\\u{0}d\\u{7f}e\\u{9b}f");
        assert_eq!(
            untrusted("\u{202e}gnidnes \u{2066}x\u{2069} a\u{2028}b\u{2029}"),
            "\\u{202e}gnidnes \\u{2066}x\\u{2069} a\\u{2028}b\\u{2029}"
        );
        // Printable text in any script is untouched, and not copied.
        let fine = "livraison à domicile, 配達, доставка 📦 \\n";
        assert!(matches!(untrusted(fine), Cow::Borrowed(s) if s == fine));
        for s in [forged, "\x1b]0;title\x07", "x\u{85}y"] {
            assert!(!untrusted(s).chars().any(is_steering_char), "{s:?}");
        }
    }

    #[test]
    fn key_values_are_neutralised() {
        let v = serde_json::json!({ "diet": "vegan\n\x1b[2Jsize: 44", "tags": ["a\x1b", "b"] });
        let text = key_values(&v);
        assert_eq!(text, "diet: vegan\\n\\e[2Jsize: 44\ntags: a\\e, b");
    }
}
