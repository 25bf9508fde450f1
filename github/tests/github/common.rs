use reqwest::StatusCode;
use reqwest::header::LOCATION;
use tdsync_github::testing::FakeGithub;
use tdsync_github::{AccessToken, Github, Url};

pub const CLIENT_ID: &str = "Iv1.0123456789abcdef";
pub const CLIENT_SECRET: &str = "test-client-secret-0123456789";

/// The registered callback; nothing needs to listen there, the tests read the Location header.
pub fn callback() -> Url {
    Url::parse("http://127.0.0.1:9/auth/github/callback").unwrap()
}

pub async fn fake() -> FakeGithub {
    FakeGithub::start(CLIENT_ID, CLIENT_SECRET, callback()).await
}

/// A fake with `alice` signed in, and a client for it.
pub async fn signed_in() -> (FakeGithub, Github) {
    let fake = fake().await;
    fake.add_user("alice");
    fake.sign_in("alice");
    let github = fake.github();
    (fake, github)
}

/// A browser that does not follow redirects, so that the test sees each Location.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What the authorize page led to.
#[derive(Debug)]
pub enum Outcome {
    /// The browser was sent to this URL.
    Redirected(Url),
    /// A page with no way on: its status and HTML.
    Page(StatusCode, String),
}

/// Does what a browser does with the authorize page: loads it, submits its form (which the
/// page's script would do), and reports where it was sent.
pub async fn run_browser(web_url: &Url, authorize_url: &Url) -> Outcome {
    let browser = browser();
    let page = browser.get(authorize_url.clone()).send().await.unwrap();
    let status = page.status();
    assert!(
        page.headers().get(LOCATION).is_none(),
        "the authorize page never redirects by itself"
    );
    let html = page.text().await.unwrap();
    let Some(form) = parse_form(&html) else {
        return Outcome::Page(status, html);
    };
    assert!(
        html.contains("document.forms[0].submit()"),
        "the page submits its form by itself: {html}"
    );
    let action = web_url.join(&form.action).unwrap();
    let answer = browser
        .post(action)
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    match answer.headers().get(LOCATION) {
        Some(location) => {
            assert_eq!(answer.status(), StatusCode::FOUND);
            Outcome::Redirected(Url::parse(location.to_str().unwrap()).unwrap())
        }
        None => {
            let status = answer.status();
            Outcome::Page(status, answer.text().await.unwrap())
        }
    }
}

pub struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

/// The first form of a page: its action and hidden inputs (enough for the fake's page).
pub fn parse_form(html: &str) -> Option<Form> {
    let start = html.find("<form")?;
    let end = start + html[start..].find("</form>")?;
    let form = &html[start..end];
    let action = attribute(form, "action")?;
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(at) = rest.find("<input") {
        let tag_end = at + rest[at..].find('>')?;
        let tag = &rest[at..tag_end];
        if let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value")) {
            fields.push((name, value));
        }
        rest = &rest[tag_end..];
    }
    Some(Form { action, fields })
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let marker = format!("{name}=\"");
    let start = tag.find(&marker)? + marker.len();
    let end = start + tag[start..].find('"')?;
    Some(unescape(&tag[start..end]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

pub fn query(url: &Url, key: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The whole web flow for the signed-in person: their token.
pub async fn sign_in_with_browser(fake: &FakeGithub, github: &Github) -> AccessToken {
    let authorization = github.authorize(&callback());
    let Outcome::Redirected(back) = run_browser(&fake.web_url(), &authorization.url).await else {
        panic!("the authorize page did not send the browser back");
    };
    let code = query(&back, "code").expect("a code");
    github
        .exchange(&code, &authorization.pkce_verifier, &callback())
        .await
        .unwrap()
}

/// A port on 127.0.0.1 where nothing listens.
pub async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}
