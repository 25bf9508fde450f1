//! td's v1 sync bodies, field for field (`../shared/reference/td-wire-protocol.md` §1).
//!
//! `payload` travels as raw JSON and is stored byte for byte, so it is a [`RawValue`] here,
//! never a parsed tree.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Most events one push may carry (td's server limit; td clients send at most 500).
pub const MAX_PUSH_EVENTS: usize = 1000;
/// How many pending events a td client sends per push request.
pub const CLIENT_PUSH_BATCH: usize = 500;
/// Pull page size when the request names none (and what td clients always ask for).
pub const DEFAULT_PULL_LIMIT: i64 = 1000;
/// Largest pull page the server returns.
pub const MAX_PULL_LIMIT: i64 = 10_000;

/// `POST /v1/projects/{id}/sync/push` request body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushRequest {
    /// Must not be blank (400 otherwise).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, schema_with = crate::openapi::not_blank)
    )]
    pub device_id: String,
    /// Must not be blank (400 otherwise).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, schema_with = crate::openapi::not_blank)
    )]
    pub session_id: String,
    /// 1 to 1000 events (400 otherwise).
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(required = true, min_items = 1, max_items = 1000)
    )]
    pub events: Vec<PushEvent>,
}

/// One action_log row as a td client pushes it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PushEvent {
    /// An integer; one written with a zero fraction (`7.0`, `7e0`) is the same number in JSON
    /// and read as such (td sends plain integers).
    #[serde(deserialize_with = "json_integer")]
    pub client_action_id: i64,
    /// Any name: td's legacy action names are normalised to the canonical ones.
    pub action_type: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::EntityTypeName))]
    pub entity_type: String,
    /// An event with an empty entity id is answered with a rejection (`empty entity_id`), not
    /// stored.
    #[serde(default)]
    pub entity_id: String,
    /// td sends `{"new_data":{…},"previous_data":{…},"schema_version":1}`; any JSON value is
    /// accepted and stored byte for byte (as td's server does), and one the projection cannot
    /// apply is quarantined.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub payload: Box<RawValue>,
    /// RFC 3339, fractional seconds allowed (chrono's reading, which also takes a space or `t`
    /// between date and time); 400 otherwise.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub client_timestamp: String,
}

/// `POST …/sync/push` response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushResponse {
    pub accepted: i64,
    /// td's server emits `null` for none; td clients accept both, tdsync always sends `[]`.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub acks: Vec<Ack>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejection>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub client_action_id: i64,
    pub server_seq: i64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub client_action_id: i64,
    pub reason: String,
    /// The original seq for a `duplicate`; omitted when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_seq: Option<i64>,
}

/// Rejection reasons td's server uses.
pub mod reject_reason {
    pub const DUPLICATE: &str = "duplicate";
    pub const EMPTY_ENTITY_ID: &str = "empty entity_id";
}

impl Rejection {
    /// td clients treat a `duplicate` rejection that carries the original seq exactly like an
    /// ack; anything else leaves the row pending.
    pub fn as_ack(&self) -> Option<Ack> {
        match self.server_seq {
            Some(seq) if seq > 0 && self.reason == reject_reason::DUPLICATE => Some(Ack {
                client_action_id: self.client_action_id,
                server_seq: seq,
            }),
            _ => None,
        }
    }
}

/// `GET …/sync/pull` query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullQuery {
    #[serde(default)]
    pub after_server_seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_client: Option<String>,
}

/// `GET …/sync/pull` response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullResponse {
    #[serde(default, deserialize_with = "null_as_empty")]
    pub events: Vec<PullEvent>,
    pub last_server_seq: i64,
    pub has_more: bool,
}

/// One event as the server returns it on pull.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PullEvent {
    pub server_seq: i64,
    pub device_id: String,
    pub session_id: String,
    pub client_action_id: i64,
    pub action_type: String,
    pub entity_type: String,
    pub entity_id: String,
    /// The pushed payload, byte for byte (any JSON value; td's is an object).
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub payload: Box<RawValue>,
    pub client_timestamp: String,
}

/// `GET …/sync/status` response.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub event_count: i64,
    pub last_server_seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<String>,
}

/// Error codes td's clients and server use (§1.3 of the wire reference).
pub mod error_code {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNAUTHORIZED: &str = "unauthorized";
    pub const FORBIDDEN: &str = "forbidden";
    pub const INSUFFICIENT_SCOPE: &str = "insufficient_scope";
    pub const NOT_FOUND: &str = "not_found";
    pub const NO_EVENTS: &str = "no_events";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    pub const UNPROCESSABLE: &str = "unprocessable";
    pub const INTERNAL: &str = "internal_error";
}

/// An error body that both of td's readers understand: the client reads the top-level
/// `code`/`message`, the reference server's own tools read the nested `error` object.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
    pub error: ErrorDetail,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        let message = message.into();
        ErrorBody {
            error: ErrorDetail {
                code: code.clone(),
                message: message.clone(),
            },
            code,
            message,
        }
    }
}

/// JSON's integers, as JSON Schema counts them: a number with no fractional part, however it
/// is written. A whole number written with a fraction or an exponent is read only where a
/// double holds it exactly (|n| ≤ 2^53): beyond that the text may name an integer the double
/// does not.
fn json_integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    struct Integer;
    impl serde::de::Visitor<'_> for Integer {
        type Value = i64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a 64-bit integer")
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v)
                .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(v), &self))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<i64, E> {
            const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
            if v.fract() == 0.0 && v.abs() <= EXACT {
                Ok(v as i64)
            } else {
                Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
            }
        }
    }
    d.deserialize_i64(Integer)
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_response_shapes_match_td() {
        let none = PushResponse {
            accepted: 0,
            acks: vec![],
            rejected: vec![],
        };
        assert_eq!(
            serde_json::to_string(&none).unwrap(),
            r#"{"accepted":0,"acks":[]}"#
        );
        let parsed: PushResponse = serde_json::from_str(r#"{"accepted":0,"acks":null}"#).unwrap();
        assert!(parsed.acks.is_empty());
        let dup = Rejection {
            client_action_id: 41,
            reason: "duplicate".into(),
            server_seq: Some(117),
        };
        assert_eq!(
            serde_json::to_string(&dup).unwrap(),
            r#"{"client_action_id":41,"reason":"duplicate","server_seq":117}"#
        );
        assert_eq!(dup.as_ack().unwrap().server_seq, 117);
        let other = Rejection {
            client_action_id: 1,
            reason: "empty entity_id".into(),
            server_seq: None,
        };
        assert!(other.as_ack().is_none());
    }

    #[test]
    fn client_action_ids_are_json_integers_however_written() {
        let caid = |n: &str| {
            let body = format!(
                r#"{{"client_action_id":{n},"action_type":"create","entity_type":"issues","payload":{{}},"client_timestamp":"2026-01-01T00:00:00Z"}}"#
            );
            serde_json::from_str::<PushEvent>(&body).map(|e| e.client_action_id)
        };
        assert_eq!(caid("7").unwrap(), 7);
        assert_eq!(caid("-7.0").unwrap(), -7);
        assert_eq!(caid("7e2").unwrap(), 700);
        assert_eq!(caid("9007199254740992.0").unwrap(), 1 << 53);
        assert_eq!(caid("9223372036854775807").unwrap(), i64::MAX);
        for bad in [
            "7.5",
            "9007199254740994.0",
            "9223372036854775808",
            "1e19",
            "\"7\"",
        ] {
            assert!(caid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payload_round_trips_byte_for_byte() {
        let body = r#"{"client_action_id":1,"action_type":"create","entity_type":"issues","entity_id":"td-1","payload":{"new_data":{"b":1,  "a":"x"},"previous_data":{},"schema_version":1},"client_timestamp":"2026-01-01T00:00:00Z"}"#;
        let ev: PushEvent = serde_json::from_str(body).unwrap();
        assert_eq!(
            ev.payload.get(),
            r#"{"new_data":{"b":1,  "a":"x"},"previous_data":{},"schema_version":1}"#
        );
    }

    #[test]
    fn error_body_carries_both_shapes() {
        let e = ErrorBody::new("unauthorized", "invalid token");
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["code"], "unauthorized");
        assert_eq!(v["error"]["code"], "unauthorized");
        assert_eq!(v["error"]["message"], "invalid token");
    }
}
