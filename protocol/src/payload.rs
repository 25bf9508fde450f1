//! The event payload envelope `{"new_data":{…},"previous_data":{…},"schema_version":1}` and the
//! JSON text conventions of td's writer (Go's `encoding/json`): object keys sorted, compact, and
//! `<`, `>`, `&`, U+2028, U+2029 escaped inside strings.

use serde_json::{Map, Value};

use crate::taxonomy::EntityType;

/// The payload's two row images. Missing or non-object members read as empty objects.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    pub new_data: Map<String, Value>,
    pub previous_data: Map<String, Value>,
}

/// Why a payload could not be read. The texts contain td's permanent-error markers
/// ("unmarshal payload", "nil payload") so every peer quarantines the same events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("unmarshal payload: {0}")]
    NotJson(String),
    #[error("nil payload: the payload is not a JSON object")]
    NotAnObject,
}

impl Envelope {
    /// Reads a payload text and scrubs the entity's local-only fields from both images.
    pub fn parse(entity: EntityType, payload: &str) -> Result<Envelope, PayloadError> {
        let value: Value =
            serde_json::from_str(payload).map_err(|e| PayloadError::NotJson(e.to_string()))?;
        let Value::Object(mut top) = value else {
            return Err(PayloadError::NotAnObject);
        };
        let mut image = |key: &str| match top.remove(key) {
            Some(Value::Object(mut m)) => {
                for field in entity.local_only_fields() {
                    m.remove(*field);
                }
                m
            }
            _ => Map::new(),
        };
        let new_data = image("new_data");
        let previous_data = image("previous_data");
        Ok(Envelope {
            new_data,
            previous_data,
        })
    }

    /// Builds the payload text a td client pushes for one action_log row. Empty or missing
    /// images become `{}`; local-only fields are scrubbed; the result is compact Go-style JSON.
    pub fn encode_action_log(
        entity: EntityType,
        new_data: Option<&str>,
        previous_data: Option<&str>,
    ) -> String {
        let image = |text: Option<&str>| -> String {
            let text = text
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .unwrap_or("{}");
            if entity.local_only_fields().is_empty() {
                return go_compact(text);
            }
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(mut m)) => {
                    for field in entity.local_only_fields() {
                        m.remove(*field);
                    }
                    go_marshal(&Value::Object(m))
                }
                _ => go_compact(text),
            }
        };
        format!(
            r#"{{"new_data":{},"previous_data":{},"schema_version":1}}"#,
            image(new_data),
            image(previous_data)
        )
    }
}

/// Removes the entity's local-only fields from a stored payload before it leaves the server
/// (td scrubs at every hop). Payloads of other entities are returned untouched.
pub fn scrub_outgoing(entity: Option<EntityType>, payload: &str) -> std::borrow::Cow<'_, str> {
    let Some(entity) = entity.filter(|e| !e.local_only_fields().is_empty()) else {
        return std::borrow::Cow::Borrowed(payload);
    };
    let Ok(Value::Object(mut top)) = serde_json::from_str::<Value>(payload) else {
        return std::borrow::Cow::Borrowed(payload);
    };
    let fields = entity.local_only_fields();
    let mut changed = false;
    for f in fields {
        changed |= top.remove(*f).is_some();
    }
    for key in ["new_data", "previous_data"] {
        if let Some(Value::Object(m)) = top.get_mut(key) {
            for f in fields {
                changed |= m.remove(*f).is_some();
            }
        }
    }
    if changed {
        std::borrow::Cow::Owned(go_marshal(&Value::Object(top)))
    } else {
        std::borrow::Cow::Borrowed(payload)
    }
}

/// Serialises a JSON value the way Go's `json.Marshal` does for decoded data: sorted keys,
/// numbers as float64 (integral values without a fraction), HTML-sensitive characters escaped.
pub fn go_marshal(value: &Value) -> String {
    let mut out = String::new();
    write_go(value, &mut out);
    out
}

fn write_go(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_number(n)),
        Value::String(s) => write_go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json's map is ordered by key, as Go sorts map keys.
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                write_go(v, out);
            }
            out.push('}');
        }
    }
}

/// A JSON number as Go's `encoding/json` prints a float64: the shortest form that reads back
/// exactly, in plain notation when the exponent is within [-6, 21), otherwise as `1e-07` /
/// `1e+21` (two-digit exponent, explicit sign).
pub fn go_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        return format!("{f}");
    }
    // Rust's `{:e}` is shortest round-trip too, as `1e-7`; Go pads the exponent.
    let sci = format!("{f:e}");
    match sci.split_once('e') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}e{sign}{digits:0>2}")
        }
        None => sci,
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Compacts JSON text without reordering it, escaping HTML-sensitive characters inside strings
/// as Go does when it embeds a raw message. Invalid JSON is returned trimmed but otherwise as is.
pub fn go_compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => out.push(c),
            }
        } else {
            match c {
                ' ' | '\n' | '\r' | '\t' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_reads_images_and_scrubs_local_fields() {
        let env = Envelope::parse(
            EntityType::WorkSessions,
            r#"{"new_data":{"id":"ws-1","worktree_root":"/home/x","name":"n"},"previous_data":null,"schema_version":1}"#,
        )
        .unwrap();
        assert_eq!(env.new_data.len(), 2);
        assert!(!env.new_data.contains_key("worktree_root"));
        assert!(env.previous_data.is_empty());
        assert!(Envelope::parse(EntityType::Issues, "[1]").is_err());
        assert!(
            Envelope::parse(EntityType::Issues, "{nope")
                .unwrap_err()
                .to_string()
                .contains("unmarshal payload")
        );
    }

    #[test]
    fn action_log_payload_is_go_shaped() {
        let p = Envelope::encode_action_log(
            EntityType::Issues,
            Some(r#"{"id": "td-1", "title": "a <b> & c"}"#),
            Some(""),
        );
        assert_eq!(
            p,
            r#"{"new_data":{"id":"td-1","title":"a \u003cb\u003e \u0026 c"},"previous_data":{},"schema_version":1}"#
        );
        let ws = Envelope::encode_action_log(
            EntityType::WorkSessions,
            Some(r#"{"name":"x","id":"ws-1","repo_root":"/r"}"#),
            None,
        );
        assert_eq!(
            ws,
            r#"{"new_data":{"id":"ws-1","name":"x"},"previous_data":{},"schema_version":1}"#
        );
    }

    #[test]
    fn go_marshal_sorts_and_prints_floats_like_go() {
        let v: Value = serde_json::from_str(r#"{"b":1.0,"a":[2.5,3],"c":"x\u2028"}"#).unwrap();
        assert_eq!(go_marshal(&v), r#"{"a":[2.5,3],"b":1,"c":"x\u2028"}"#);
        // Go: strconv 'f' inside [1e-6, 1e21), else 'e' with a two-digit exponent.
        let v: Value = serde_json::from_str("[1e-7,0.000001,1e21,1.5e20,1.5e300,-2.5e-9]").unwrap();
        assert_eq!(
            go_marshal(&v),
            "[1e-07,0.000001,1e+21,150000000000000000000,1.5e+300,-2.5e-09]"
        );
    }

    #[test]
    fn outgoing_scrub_only_touches_local_fields() {
        let raw =
            r#"{"new_data":{"id":"ws-1","worktree_id":"w"},"previous_data":{},"schema_version":1}"#;
        assert_eq!(
            scrub_outgoing(Some(EntityType::WorkSessions), raw),
            r#"{"new_data":{"id":"ws-1"},"previous_data":{},"schema_version":1}"#
        );
        let untouched = r#"{"new_data":{"id":"td-1"},  "previous_data":{}}"#;
        assert_eq!(
            scrub_outgoing(Some(EntityType::Issues), untouched),
            untouched
        );
    }
}
