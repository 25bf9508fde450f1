//! A response as the tests look at it: status, headers, body; JSON on demand, and the checks
//! every error answer must pass.

use serde_json::Value;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, showing the body, when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    /// Asserts an error answer: `status`, a JSON content type, a request id, and td's two
    /// envelopes — `{"code","message"}` at the top level and the same under `error` — with
    /// nothing else in the body. Returns the message.
    #[track_caller]
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "error content type: {:?}",
            self.header("content-type")
        );
        assert!(
            self.header("x-request-id").is_some(),
            "an error answer without x-request-id"
        );
        let body = self.json();
        let obj = body.as_object().expect("an error body is an object");
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "error", "message"], "{body}");
        assert_eq!(body["code"], code, "{body}");
        let message = body["message"].as_str().expect("message is a string");
        assert!(!message.is_empty(), "an empty message: {body}");
        assert_eq!(
            body["error"],
            serde_json::json!({"code": code, "message": message}),
            "the nested envelope differs from the top level: {body}"
        );
        message.to_string()
    }
}
