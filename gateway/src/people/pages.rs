//! The few HTML pages people see (approving a login; the GitHub sign-in's result): plain,
//! self-contained (no scripts, no external resources), every value escaped.

use std::fmt::Write as _;

use axum::{http::StatusCode, response::Html};
use tdsync_acl::Approved;

/// `&`, `<`, `>`, `"` and `'` as entities.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
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

/// A whole page around `body` (already escaped HTML).
pub fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · tdsync</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;\
         padding:0 1rem;line-height:1.5}}pre{{background:#f4f4f4;padding:1rem;overflow-x:auto}}\
         button{{font-size:1.1rem;padding:.5rem 1.5rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>\n",
        title = escape(title)
    ))
}

/// A page that only says something.
pub fn message(status: StatusCode, title: &str, text: &str) -> (StatusCode, Html<String>) {
    (status, page(title, &format!("<p>{}</p>", escape(text))))
}

/// What a login link opens: who, from where, and the one button that approves.
pub fn approve_form(email: &str, device: &str, token: &str) -> (StatusCode, Html<String>) {
    let body = format!(
        "<p>A td login for <strong>{email}</strong> is waiting on <strong>{device}</strong>.</p>\
         <p>Approve it only if you started it just now.</p>\
         <form method=\"post\" action=\"/auth/device/approve\">\
         <input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button type=\"submit\">Approve</button></form>",
        email = escape(email),
        device = escape(device),
        token = escape(token),
    );
    (StatusCode::OK, page("Approve this td login?", &body))
}

/// After approving: back to the terminal, and what the login brings.
pub fn approved(approved: &Approved) -> (StatusCode, Html<String>) {
    let mut body = format!(
        "<p>The login on <strong>{}</strong> is approved: return to your terminal. \
         You can close this window.</p>",
        escape(&approved.device_name)
    );
    if !approved.joined.is_empty() {
        body.push_str("<p>Invitations accepted:</p><ul>");
        for (project, role) in &approved.joined {
            let _ = write!(
                body,
                "<li>{} as {}</li>",
                escape(project.as_str()),
                escape(role.as_str())
            );
        }
        body.push_str("</ul>");
    }
    if !approved.not_joined.is_empty() {
        body.push_str("<p>Invitations not accepted:</p><ul>");
        for why in &approved.not_joined {
            let _ = write!(body, "<li>{}</li>", escape(why));
        }
        body.push_str("</ul>");
    }
    (StatusCode::OK, page("Login approved", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let (_, Html(html)) = approve_form("a@b.co", "<script>", "t.x");
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    }
}
