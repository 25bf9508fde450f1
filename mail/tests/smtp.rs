//! `Mailer` against a real SMTP server: the sink `infra/test.sh` starts (`ensure_smtp`), whose
//! every accepted message is a file in `TDSYNC_TEST_MAILDIR`. Without it these skip loudly,
//! unless `TDSYNC_REQUIRE_SERVICES=1`, when they fail.

use std::{net::TcpListener, time::Duration};

use tdsync_mail::{
    Email, MailError, Mailer, MailerConfig,
    testing::{Maildir, smtp_url, unique_address},
};

const ARRIVAL: Duration = Duration::from_secs(10);

fn sink(test: &str) -> Option<(Mailer, Maildir)> {
    let url = smtp_url(test)?;
    let maildir = Maildir::from_env(test)?;
    let mailer = Mailer::new(MailerConfig::Smtp {
        url,
        from: "tdsync <noreply@tdsync.test>".parse().unwrap(),
    })
    .unwrap();
    Some((mailer, maildir))
}

#[tokio::test]
async fn a_message_arrives_with_its_subject_recipient_and_long_link_intact() {
    let Some((mailer, maildir)) = sink("a_message_arrives") else {
        return;
    };
    assert!(mailer.describe().starts_with("SMTP smtp://127.0.0.1:"));
    let to = unique_address("login");
    // Longer than any line quoted-printable would leave unwrapped, and with `=` in it.
    let link = format!(
        "http://127.0.0.1:8080/v1/login/approve?request=lr_{}&code={}",
        "a".repeat(120),
        "Zz09-_".repeat(20)
    );
    let text = format!(
        "Someone asked to sign in to tdsync as {to}.\n\nTo approve, open:\n\n{link}\n\n\
         .a line starting with a dot\nIf it was not you, ignore this message.\n"
    );
    mailer
        .send(&Email {
            to: to.clone(),
            subject: "Approve your tdsync login".into(),
            text: text.clone(),
        })
        .await
        .unwrap();

    let mail = maildir.wait_for(&to, ARRIVAL).await;
    assert_eq!(mail.subject, "Approve your tdsync login");
    assert_eq!(mail.to, to);
    assert_eq!(mail.body_text.trim_end(), text.trim_end());
    assert_eq!(
        mail.link_starting_with("http://127.0.0.1:8080/v1/login/")
            .as_deref(),
        Some(link.as_str())
    );
    // Sent as it is: no quoted-printable wrapping of the link, a single line on the wire.
    assert!(
        mail.raw.contains("Content-Transfer-Encoding: 7bit"),
        "{}",
        mail.raw
    );
    assert!(
        mail.raw.contains(&format!("\r\n{link}\r\n")),
        "{}",
        mail.raw
    );
    assert!(
        mail.raw.contains("From: tdsync <noreply@tdsync.test>"),
        "{}",
        mail.raw
    );
}

#[tokio::test]
async fn non_ascii_text_arrives_decoded() {
    let Some((mailer, maildir)) = sink("non_ascii_text_arrives_decoded") else {
        return;
    };
    let to = unique_address("invite");
    let link = format!("https://tdsync.example/invite/{}", "b".repeat(100));
    let text = format!("Grüße! Ünïcödé invitation:\n{link}\n");
    mailer
        .send(&Email {
            to: to.clone(),
            subject: "Einladung für Jürgen".into(),
            text: text.clone(),
        })
        .await
        .unwrap();
    let mail = maildir.wait_for(&to, ARRIVAL).await;
    assert_eq!(mail.subject, "Einladung für Jürgen");
    // Lettre ends the message with a line break of its own: compared without trailing ones.
    assert_eq!(mail.body_text.trim_end(), text.trim_end());
    assert!(mail.raw.contains("quoted-printable"), "{}", mail.raw);
    assert_eq!(
        mail.link_starting_with("https://tdsync.example/")
            .as_deref(),
        Some(link.as_str())
    );
}

#[tokio::test]
async fn a_recipient_the_server_rejects_is_an_error_naming_the_server() {
    let Some((mailer, _maildir)) = sink("a_recipient_the_server_rejects") else {
        return;
    };
    let err = mailer
        .send(&Email {
            to: "nobody@reject.invalid".into(),
            subject: "s".into(),
            text: "t".into(),
        })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MailError::Smtp { .. }), "{text}");
    assert!(text.contains("smtp://127.0.0.1:"), "{text}");
    assert!(text.contains("550"), "{text}");
}

#[tokio::test]
async fn a_bad_address_is_refused_before_any_connection() {
    // A server that would hang every connection: the error must come before one is made.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mailer = Mailer::new(MailerConfig::Smtp {
        url: format!("smtp://127.0.0.1:{port}"),
        from: "noreply@tdsync.test".parse().unwrap(),
    })
    .unwrap();
    for bad in ["not an address", "a@", "@b.test", "a@b.test, c@d.test", ""] {
        let err = tokio::time::timeout(
            Duration::from_secs(2),
            mailer.send(&Email {
                to: bad.into(),
                subject: "s".into(),
                text: "t".into(),
            }),
        )
        .await
        .expect("refused at once")
        .unwrap_err();
        match &err {
            MailError::BadAddress { address, .. } => assert_eq!(address, bad),
            other => panic!("{bad:?}: {other}"),
        }
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing connected");
    // The Log mailer refuses the same addresses.
    let log = Mailer::new(MailerConfig::Log).unwrap();
    let err = log
        .send(&Email {
            to: "not an address".into(),
            subject: "s".into(),
            text: "t".into(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, MailError::BadAddress { .. }), "{err}");
}

#[tokio::test]
async fn a_closed_port_is_an_error_naming_the_host_and_not_the_password() {
    // A port nothing listens on: bound, then closed.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mailer = Mailer::new(MailerConfig::Smtp {
        url: format!("smtp://alice:s3cr3t-pw@127.0.0.1:{port}"),
        from: "noreply@tdsync.test".parse().unwrap(),
    })
    .unwrap();
    assert_eq!(
        mailer.describe(),
        format!("SMTP smtp://alice:***@127.0.0.1:{port}")
    );
    let err = mailer
        .send(&Email {
            to: "someone@tdsync.test".into(),
            subject: "s".into(),
            text: "t".into(),
        })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MailError::Smtp { .. }), "{text}");
    assert!(
        text.contains(&format!("smtp://alice:***@127.0.0.1:{port}")),
        "{text}"
    );
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!format!("{err:?}").contains("s3cr3t"), "{err:?}");
}

/// What a subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_mode_sends_without_error_and_logs_the_whole_message() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // This thread's default: the test runtime runs the send on it.
    let _guard = tracing::subscriber::set_default(subscriber);

    let mailer = Mailer::new(MailerConfig::Log).unwrap();
    assert_eq!(
        mailer.describe(),
        "log (no SMTP configured: links are written to the server log)"
    );
    let link = format!(
        "http://127.0.0.1:8080/v1/login/approve?code={}",
        "c".repeat(150)
    );
    mailer
        .send(&Email {
            to: "Someone <someone@tdsync.test>".into(),
            subject: "Approve your tdsync login".into(),
            text: format!("To approve, open:\n{link}\n"),
        })
        .await
        .unwrap();
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN"), "{log}");
    assert!(log.contains("someone@tdsync.test"), "{log}");
    assert!(log.contains("Approve your tdsync login"), "{log}");
    assert!(
        log.contains(&format!("To approve, open:\n{link}\n")),
        "{log}"
    );
}
