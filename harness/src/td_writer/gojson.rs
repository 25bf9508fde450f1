//! JSON text exactly as td's Go code prints it. Structs (Issue, Board, Note, IssueReview) keep
//! their declaration order and drop `omitempty` fields that are empty; maps (logs, comments,
//! dependencies, …) are printed with sorted keys. Both escape `<`, `>`, `&` like `encoding/json`.

use serde_json::{Map, Value};
use tdsync_protocol::payload::go_marshal;

use super::clock::{Instant, rfc3339_nano};

/// A Go struct being marshalled, field by field in declaration order.
pub(crate) struct GoStruct {
    out: String,
    empty: bool,
}

impl GoStruct {
    pub fn new() -> GoStruct {
        GoStruct {
            out: String::from("{"),
            empty: true,
        }
    }

    /// A field whose value is already JSON text (a nested struct).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut GoStruct {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        self.out
            .push_str(&go_marshal(&Value::String(key.to_string())));
        self.out.push(':');
        self.out.push_str(json);
        self
    }

    pub fn value(&mut self, key: &str, v: &Value) -> &mut GoStruct {
        self.raw(key, &go_marshal(v))
    }

    pub fn str(&mut self, key: &str, s: &str) -> &mut GoStruct {
        self.value(key, &Value::String(s.to_string()))
    }

    /// `string` with `omitempty`.
    pub fn str_opt(&mut self, key: &str, s: &str) -> &mut GoStruct {
        if !s.is_empty() {
            self.str(key, s);
        }
        self
    }

    pub fn int(&mut self, key: &str, i: i64) -> &mut GoStruct {
        self.value(key, &Value::from(i))
    }

    pub fn bool(&mut self, key: &str, b: bool) -> &mut GoStruct {
        self.value(key, &Value::Bool(b))
    }

    pub fn time(&mut self, key: &str, t: &Instant) -> &mut GoStruct {
        self.str(key, &rfc3339_nano(t))
    }

    /// `*time.Time` with `omitempty`.
    pub fn time_opt(&mut self, key: &str, t: Option<&Instant>) -> &mut GoStruct {
        if let Some(t) = t {
            self.time(key, t);
        }
        self
    }

    pub fn finish(&mut self) -> String {
        let mut out = std::mem::take(&mut self.out);
        out.push('}');
        out
    }
}

/// A Go `map[string]any` marshalled: keys sorted.
pub(crate) fn go_map(entries: Vec<(&str, Value)>) -> String {
    let mut map = Map::new();
    for (k, v) in entries {
        map.insert(k.to_string(), v);
    }
    go_marshal(&Value::Object(map))
}

/// A Go `[]string` marshalled; `None` is a nil slice (`null`).
pub(crate) fn go_string_slice(items: Option<&[String]>) -> String {
    match items {
        None => "null".to_string(),
        Some(items) => go_marshal(&Value::Array(
            items.iter().cloned().map(Value::String).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_order_and_escaping() {
        let mut s = GoStruct::new();
        s.str("id", "td-1")
            .str_opt("description", "")
            .str("title", "a<b>&c")
            .int("points", 3)
            .bool("minor", false);
        assert_eq!(
            s.finish(),
            r#"{"id":"td-1","title":"a\u003cb\u003e\u0026c","points":3,"minor":false}"#
        );
        assert_eq!(
            go_map(vec![("b", Value::from(1)), ("a", Value::from("x"))]),
            r#"{"a":"x","b":1}"#
        );
        assert_eq!(go_string_slice(None), "null");
        assert_eq!(go_string_slice(Some(&[])), "[]");
        assert_eq!(go_string_slice(Some(&["x\"y".to_string()])), r#"["x\"y"]"#);
    }
}
