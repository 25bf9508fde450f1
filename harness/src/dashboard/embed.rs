//! Putting text into the page safely: HTML-escaped text, JSON that cannot end its `<script>`
//! block, single-pass template filling, and the hashes the page's Content-Security-Policy
//! allows.

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use sha2::{Digest, Sha256};

/// Text for an HTML text node or a quoted attribute value.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block. `<`, `>` and `&` only occur inside JSON
/// strings, where `\u003c` etc. mean the same to `JSON.parse`, so no `</script>` or `<!--` in
/// the data can change how the HTML parser reads the block. U+2028/9 are escaped too, in case
/// the text is ever pasted into JS source.
pub fn json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Replaces `{{NAME}}` in `template` with its value, scanning only the template: a value that
/// itself contains `{{…}}` (report data can) is never filled in again. Unknown names stay as
/// they are.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let extra: usize = values.iter().map(|(_, v)| v.len()).sum();
    let mut out = String::with_capacity(template.len() + extra);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (v, end))
        }) {
            Some((value, end)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A CSP source for an inline `<script>` or `<style>` with exactly this content.
pub fn csp_hash(content: &str) -> String {
    // CSP hashes are standard base64 with padding.
    format!(
        "'sha256-{}'",
        BASE64.encode(Sha256::digest(content.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(html("emoji 🦀 and עברית"), "emoji 🦀 and עברית");
    }

    #[test]
    fn script_json_cannot_close_its_block() {
        let json = serde_json::to_string(&serde_json::json!({
            "t": "</script><script>alert(1)</script><!-- & \u{2028}"
        }))
        .unwrap();
        let safe = json_for_script(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(
            back["t"],
            "</script><script>alert(1)</script><!-- & \u{2028}"
        );
    }

    #[test]
    fn fill_does_not_refill_values() {
        let out = fill("a {{X}} b {{Y}} c {{Z}}", &[("X", "{{Y}}"), ("Y", "y")]);
        assert_eq!(out, "a {{Y}} b y c {{Z}}");
        assert_eq!(fill("{{", &[]), "{{");
    }

    #[test]
    fn csp_hashes_are_base64_sha256() {
        // sha256("") as browsers compute it for a CSP source.
        assert_eq!(
            csp_hash(""),
            "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"
        );
    }
}
