//! Sending e-mail through an SMTP server (`smtp_url`, `smtp_from`, `smtp_ca_file`): STARTTLS
//! (`smtp://…?tls=required`), TLS from the first byte (`smtps://`), or a plain relay on the
//! same machine (`smtp://localhost:25`), with the credentials in the URL. The server's answer
//! is reported as it gave it, so a refusal says why.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use crate::config::SmtpConfig;

/// How long one SMTP conversation may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A message to send: its text, and optionally an HTML part with one inline PNG image
/// (`cid:chart`) and a one-click unsubscribe address (RFC 8058).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outgoing {
    pub subject: String,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// The PNG the HTML shows as `cid:chart`, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart_png: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsubscribe: Option<String>,
}

/// The Content-ID of the inline chart.
pub const CHART_CID: &str = "chart";

/// What `smtp_url` names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Server {
    host: String,
    port: u16,
    tls: Mode,
    credentials: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `smtp://` without `tls`: no TLS at all.
    Plain,
    /// `?tls=opportunistic`: STARTTLS when offered.
    Opportunistic,
    /// `?tls=required`: STARTTLS or nothing.
    Required,
    /// `smtps://`: TLS from the start.
    Wrapper,
}

fn parse(raw: &str) -> Result<Server, String> {
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
    let mut tls = match url.scheme() {
        "smtp" => Mode::Plain,
        "smtps" => Mode::Wrapper,
        other => {
            return Err(format!(
                "the scheme is smtp:// or smtps://, not {}://",
                other.chars().take(16).collect::<String>()
            ));
        }
    };
    for (k, v) in url.query_pairs() {
        match (k.as_ref(), v.as_ref(), tls) {
            ("tls", "required", Mode::Plain) => tls = Mode::Required,
            ("tls", "opportunistic", Mode::Plain) => tls = Mode::Opportunistic,
            ("tls", _, Mode::Wrapper) => {
                return Err("smtps:// is TLS from the start: leave `tls=` out".into());
            }
            ("tls", v, _) => {
                return Err(format!(
                    "`tls={}` is not `required` or `opportunistic`",
                    v.chars().take(16).collect::<String>()
                ));
            }
            (k, _, _) => {
                return Err(format!(
                    "unknown parameter `{}` (only `tls`)",
                    k.chars().take(16).collect::<String>()
                ));
            }
        }
    }
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or("the URL names no host")?
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    let port = url.port().unwrap_or(match tls {
        Mode::Wrapper => 465,
        Mode::Plain => 25,
        _ => 587,
    });
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "the user or password is not UTF-8 once decoded".to_string())
    };
    let credentials = match (url.username(), url.password()) {
        ("", None) => None,
        (user, Some(pass)) if !user.is_empty() => Some((decode(user)?, decode(pass)?)),
        _ => {
            return Err(
                "give both a user and a password (smtp://user:pass@host), or neither".into(),
            );
        }
    };
    if credentials.is_some() && tls == Mode::Plain && !is_loopback(&host) {
        return Err(
            "a password would cross the network in clear: use ?tls=required or smtps://".into(),
        );
    }
    Ok(Server {
        host,
        port,
        tls,
        credentials,
    })
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `smtp_url` can be used, or why not (the message never repeats the password).
pub fn check_url(raw: &str) -> Result<(), String> {
    parse(raw).map(|_| ())
}

/// Whether `from` is a sender address (`Name <a@example.com>` or `a@example.com`).
pub fn check_mailbox(from: &str) -> Result<(), String> {
    from.trim().parse::<Mailbox>().map(|_| ()).map_err(|_| {
        format!(
            "`{}` is not an e-mail address",
            from.chars().take(64).collect::<String>()
        )
    })
}

/// A connection to the configured SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Where it sends, for messages (never the password).
    pub describe: String,
}

impl Mailer {
    pub fn new(config: &SmtpConfig) -> Result<Mailer, String> {
        let server = parse(&config.url.0)?;
        let from: Mailbox = config
            .from
            .trim()
            .parse()
            .map_err(|_| format!("`{}` is not an e-mail address", config.from))?;
        let mut params = TlsParameters::builder(server.host.clone());
        if let Some(file) = &config.ca_file {
            let pem = std::fs::read(file)
                .map_err(|e| format!("cannot read smtp_ca_file {}: {e}", file.display()))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                format!(
                    "smtp_ca_file {} is not a PEM certificate: {e}",
                    file.display()
                )
            })?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build()
            .map_err(|e| format!("cannot set up TLS for {}: {e}", server.host))?;
        let tls = match server.tls {
            Mode::Plain => Tls::None,
            Mode::Opportunistic => Tls::Opportunistic(params),
            Mode::Required => Tls::Required(params),
            Mode::Wrapper => Tls::Wrapper(params),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .timeout(Some(TIMEOUT));
        if let Some((user, pass)) = &server.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        let describe = format!(
            "{}:{} ({})",
            server.host,
            server.port,
            match server.tls {
                Mode::Plain => "no TLS",
                Mode::Opportunistic => "STARTTLS when offered",
                Mode::Required => "STARTTLS",
                Mode::Wrapper => "TLS",
            }
        );
        Ok(Mailer {
            transport: builder.build(),
            from,
            describe,
        })
    }

    /// Sends `message` (text, and HTML when given) to `to`; the server's answer, as it gave
    /// it (`250 2.0.0 Ok: queued as …`), or its refusal.
    pub async fn send(
        &self,
        to: &str,
        subject: &str,
        text: &str,
        html: Option<&str>,
    ) -> Result<String, String> {
        self.send_message(
            to,
            &Outgoing {
                subject: subject.to_string(),
                text: text.to_string(),
                html: html.map(str::to_string),
                ..Outgoing::default()
            },
        )
        .await
    }

    /// Sends `message` to `to`: text alone, or text and HTML as alternatives, the HTML with
    /// its inline chart as a related part; `List-Unsubscribe` and `List-Unsubscribe-Post`
    /// when it has an unsubscribe address.
    pub async fn send_message(&self, to: &str, message: &Outgoing) -> Result<String, String> {
        let to: Mailbox = to.trim().parse().map_err(|_| {
            format!(
                "`{}` is not an e-mail address",
                to.chars().take(64).collect::<String>()
            )
        })?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&message.subject);
        if let Some(url) = &message.unsubscribe {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{url}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_string(),
                ));
        }
        let text = SinglePart::plain(message.text.clone());
        let built = match &message.html {
            None => builder.singlepart(text),
            Some(html) => {
                let html = SinglePart::html(html.clone());
                let rich = match &message.chart_png {
                    None => MultiPart::alternative().singlepart(text).singlepart(html),
                    Some(png) => {
                        use base64::Engine as _;
                        let png = base64::engine::general_purpose::STANDARD
                            .decode(png)
                            .map_err(|e| format!("the chart is not base64: {e}"))?;
                        let png_type = ContentType::parse("image/png")
                            .map_err(|e| format!("cannot write the message: {e}"))?;
                        MultiPart::alternative().singlepart(text).multipart(
                            MultiPart::related().singlepart(html).singlepart(
                                Attachment::new_inline(CHART_CID.to_string()).body(png, png_type),
                            ),
                        )
                    }
                };
                builder.multipart(rich)
            }
        }
        .map_err(|e| format!("cannot write the message: {e}"))?;
        match self.transport.send(built).await {
            Ok(r) => Ok(format!(
                "{} {}",
                r.code(),
                r.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err(format!("{} refused or failed: {e}", self.describe)),
        }
    }

    /// A short message that says the server works (the "send a test message" button).
    pub async fn send_test(&self, to: &str) -> Result<String, String> {
        self.send(
            to,
            "Footfall: test message",
            "This is a test message from Footfall.\nE-mail from this collector reaches you.\n",
            None,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_with_their_tls_and_port() {
        let s = parse("smtp://ann:p%40ss@mail.example.com?tls=required").unwrap();
        assert_eq!(
            s,
            Server {
                host: "mail.example.com".into(),
                port: 587,
                tls: Mode::Required,
                credentials: Some(("ann".into(), "p@ss".into())),
            }
        );
        assert_eq!(parse("smtps://a:b@mail.example.com").unwrap().port, 465);
        assert_eq!(
            parse("smtps://a:b@mail.example.com:2465").unwrap().port,
            2465
        );
        let relay = parse("smtp://localhost").unwrap();
        assert_eq!(
            (relay.port, relay.tls, relay.credentials),
            (25, Mode::Plain, None)
        );
        assert_eq!(
            parse("smtp://h?tls=opportunistic").unwrap().tls,
            Mode::Opportunistic
        );
        for (bad, says) in [
            ("http://mail.example.com", "smtp:// or smtps://"),
            ("smtp://mail.example.com?tls=maybe", "not `required`"),
            ("smtps://mail.example.com?tls=required", "leave `tls=` out"),
            ("smtp://mail.example.com?auth=plain", "unknown parameter"),
            (
                "smtp://ann@mail.example.com?tls=required",
                "both a user and a password",
            ),
            ("smtp://ann:secret@mail.example.com", "in clear"),
            ("not a url", "not a URL"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("secret"), "{e}");
        }
        assert!(
            parse("smtp://ann:secret@127.0.0.1:2525").is_ok(),
            "a loopback relay"
        );
        assert!(check_mailbox("Footfall <stats@example.com>").is_ok());
        assert!(check_mailbox("stats").is_err());
    }
}
