//! The privacy notice a site owner can publish: what Footfall records about a visit and what it
//! never does, how long each kind of data is kept, where it is stored, the legal basis and the
//! visitor's rights, in English or Danish. It is written from the running configuration
//! ([`Facts::from_config`]), so when retention, geolocation or the store change, the text
//! changes with them.

use std::fmt::Write;

use crate::config::Config;

/// How long a day's salt exists (it is deleted 48 hours after its day began).
pub const SALT_HOURS: u32 = 48;

/// The languages a notice is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    En,
    Da,
}

impl Lang {
    /// From a `lang` parameter (`en`, `da`).
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "en" => Some(Lang::En),
            "da" => Some(Lang::Da),
            _ => None,
        }
    }
}

/// How a notice is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Markdown.
    Md,
    /// An HTML fragment (headings, paragraphs, lists), to paste into a page.
    Html,
}

impl Format {
    /// From a `format` parameter (`md`, `html`).
    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "md" => Some(Format::Md),
            "html" => Some(Format::Html),
            _ => None,
        }
    }
}

/// Where events and rollups are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// The embedded store, in the data directory of the server that runs Footfall.
    Embedded,
    /// One ClickHouse server.
    ClickHouse,
    /// A ClickHouse cluster.
    Cluster,
}

/// What the notice states, from the configuration and the site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub site: String,
    /// Who is responsible, and how to reach them; a placeholder to fill in when not given.
    pub controller: Option<String>,
    pub raw_retention_days: u32,
    pub aggregate_retention_days: u32,
    /// Whether a GeoIP database is configured (else no location is recorded).
    pub location: bool,
    pub storage: Storage,
}

/// The longest `controller` text a notice takes.
pub const MAX_CONTROLLER_CHARS: usize = 500;

impl Facts {
    /// The facts of `site` under `config`; `controller` names who is responsible.
    pub fn from_config(
        config: &Config,
        site: &str,
        controller: Option<&str>,
    ) -> Result<Facts, String> {
        Facts {
            site: site.to_string(),
            controller: None,
            raw_retention_days: config.raw_retention_days,
            aggregate_retention_days: config.aggregate_retention_days,
            location: !config.geoip_db.is_empty(),
            storage: match &config.clickhouse {
                None => Storage::Embedded,
                Some(c) if c.cluster.is_some() => Storage::Cluster,
                Some(_) => Storage::ClickHouse,
            },
        }
        .with_controller(controller)
    }

    /// The same facts naming `controller` as responsible (checked: at most
    /// [`MAX_CONTROLLER_CHARS`], no control characters); none or blank: a placeholder.
    /// The facts for a site that keeps its data for less than the server does.
    pub fn for_site(self, settings: &crate::sites::SiteSettings) -> Facts {
        Facts {
            raw_retention_days: settings.raw_days(self.raw_retention_days),
            aggregate_retention_days: settings.aggregate_days(self.aggregate_retention_days),
            ..self
        }
    }

    pub fn with_controller(self, controller: Option<&str>) -> Result<Facts, String> {
        let controller = match controller.map(str::trim) {
            None | Some("") => None,
            Some(c) if c.chars().count() > MAX_CONTROLLER_CHARS => {
                return Err(format!(
                    "the controller is longer than {MAX_CONTROLLER_CHARS} characters"
                ));
            }
            Some(c) if c.chars().any(char::is_control) => {
                return Err("the controller must not contain control characters".into());
            }
            Some(c) => Some(c.to_string()),
        };
        Ok(Facts { controller, ..self })
    }
}

/// One piece of a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Title(String),
    Heading(String),
    Para(String),
    List(Vec<String>),
}

/// A number of days as people say it: whole years as years (with the days), else days.
fn span(days: u32, lang: Lang) -> String {
    let (day, days_word, year, years_word) = match lang {
        Lang::En => ("day", "days", "year", "years"),
        Lang::Da => ("dag", "dage", "år", "år"),
    };
    let days_text = format!("{days} {}", if days == 1 { day } else { days_word });
    if days >= 365 && days.is_multiple_of(365) {
        let y = days / 365;
        format!(
            "{y} {} ({days_text})",
            if y == 1 { year } else { years_word }
        )
    } else {
        days_text
    }
}

/// The words of a notice in one language; `{site}`, `{who}`, `{hours}`, `{raw}`,
/// `{aggregate}` and `{place}` are filled in from the facts.
struct Words {
    title: &'static str,
    responsible: &'static str,
    placeholder: &'static str,
    headings: [&'static str; 8],
    why: &'static str,
    /// What is recorded; the location comes after the fourth.
    recorded: [&'static str; 6],
    location: [&'static str; 2],
    never: [&'static str; 4],
    counting: &'static str,
    kept: [&'static str; 3],
    /// Embedded, ClickHouse, cluster.
    places: [&'static str; 3],
    stored: &'static str,
    basis: &'static str,
    rights: [&'static str; 3],
}

const ENGLISH: Words = Words {
    title: "Visitor statistics on {site}",
    responsible: "{who} is responsible for the statistics described here (\"we\", \"us\").",
    placeholder: "[The site owner's name, address and contact e-mail]",
    headings: [
        "What we measure, and why",
        "What is recorded about a visit",
        "What is never recorded",
        "How a visitor is counted within a day",
        "How long data is kept",
        "Where the data is kept",
        "Legal basis",
        "Your rights",
    ],
    why: "We count visits to this website to learn which pages are read, where visitors come from and whether the site works on their devices. We use Footfall, a statistics tool that runs on servers we control. The statistics are for our own use, to improve the website: they are not used for advertising, not sold and not combined with other information about you.",
    recorded: [
        "the address of the page, without its query string (campaign tags such as utm_source are kept)",
        "the page that linked to it (the referrer), reduced to its host and path",
        "the time of the visit",
        "the browser and its major version, the operating system and its version, the device type (desktop, mobile or tablet) and the width of the browser window",
        "how long the page was in view and how far down it was scrolled",
        "actions the site chooses to count, such as a sign-up or a download, with the details and amounts it attaches to them",
    ],
    location: [
        "the country, region and city, looked up from a shortened IP address (the last part removed: the last 8 bits of an IPv4 address, the last 80 of an IPv6 address), so never more precise than a town",
        "no location: no geolocation database is configured, so not even the country is recorded",
    ],
    never: [
        "No cookies, and nothing else is stored in your browser.",
        "Your full IP address is never written down: it is used once, in memory, to make the daily visitor code described below.",
        "Your browser's identification string (its user-agent) is never stored, only the names read from it.",
        "Nothing follows you from one website to another, and nothing is shared with other websites.",
    ],
    counting: "To count unique visitors without cookies, each event carries a code made from a random secret of the day, this website's name, your IP address and your browser's identification string. A new secret is drawn for every day and deleted {hours} hours after that day began. While it exists, the same address and browser give the same code on the same day; once it is deleted, nobody, ourselves included, can work out whose visit a code belongs to, and the same person gets an unrelated code the next day.",
    kept: [
        "Individual events (one row per page view or action, with the daily code): {raw}, then deleted automatically.",
        "Daily totals (counts per page, source, country and so on, with no visitor code): {aggregate}, then deleted automatically.",
        "The daily secrets: {hours} hours.",
    ],
    places: [
        "in database files on the server that runs our Footfall installation",
        "in a ClickHouse database that we operate next to our Footfall installation",
        "in a ClickHouse cluster (several database servers) that we operate next to our Footfall installation",
    ],
    stored: "The data is kept {place}. It is not sent to the makers of Footfall or to anyone else.",
    basis: "We process this data on the basis of our legitimate interest in knowing how our website is used and in keeping it working (Article 6(1)(f) of the General Data Protection Regulation). The measurement is limited to statistics for our own use, keeps no identifier on your device and does not follow you across websites.",
    rights: [
        "You have the right to access the data about you, to have it corrected or erased, to restrict or object to its processing, and to complain to a data protection authority (in Denmark, Datatilsynet: www.datatilsynet.dk).",
        "For {hours} hours after a visit we can find its events from the IP address and the browser it was made with: write to us at the contact above with both, and we will show you the events or delete them. After that, the events can no longer be linked to any person, so we cannot tell which of them are yours; no data remains that we could show, correct or delete (Article 11 of the General Data Protection Regulation).",
        "You can object to the measurement at any time by writing to us, or avoid it altogether by blocking this site's statistics script in your browser.",
    ],
};

const DANISH: Words = Words {
    title: "Besøgsstatistik på {site}",
    responsible: "{who} er dataansvarlig for den statistik, der beskrives her (\"vi\", \"os\").",
    placeholder: "[Ejerens navn, adresse og kontaktadresse]",
    headings: [
        "Hvad vi måler, og hvorfor",
        "Hvad der registreres om et besøg",
        "Hvad der aldrig registreres",
        "Sådan tælles en besøgende inden for en dag",
        "Hvor længe data gemmes",
        "Hvor data opbevares",
        "Retsgrundlag",
        "Dine rettigheder",
    ],
    why: "Vi tæller besøg på dette website for at se, hvilke sider der bliver læst, hvor de besøgende kommer fra, og om siden virker på deres enheder. Til det bruger vi Footfall, et statistikværktøj, der kører på servere, vi selv har kontrol over. Statistikken bruges kun af os, til at forbedre websitet: den bruges ikke til annoncering, sælges ikke og kobles ikke med andre oplysninger om dig.",
    recorded: [
        "sidens adresse uden forespørgselsdelen (kampagnemærker som utm_source bevares)",
        "den side, der linkede hertil (henviseren), skåret ned til værtsnavn og sti",
        "tidspunktet for besøget",
        "browseren og dens hovedversion, styresystemet og dets version, enhedstypen (computer, mobil eller tablet) og bredden af browservinduet",
        "hvor længe siden var synlig, og hvor langt ned den blev rullet",
        "handlinger, som siden vælger at tælle, fx en tilmelding eller en download, med de detaljer og beløb, den knytter til dem",
    ],
    location: [
        "land, region og by, slået op ud fra en afkortet IP-adresse (den sidste del fjernet: de sidste 8 bit af en IPv4-adresse, de sidste 80 af en IPv6-adresse), så aldrig mere præcist end en by",
        "ingen placering: der er ikke sat en geolokationsdatabase op, så ikke engang landet registreres",
    ],
    never: [
        "Ingen cookies, og intet andet gemmes i din browser.",
        "Din fulde IP-adresse skrives aldrig ned: den bruges én gang, i hukommelsen, til at danne den daglige besøgskode, som er beskrevet nedenfor.",
        "Din browsers identifikationsstreng (dens user-agent) gemmes aldrig, kun de navne, der læses ud af den.",
        "Intet følger dig fra ét website til et andet, og intet deles med andre websites.",
    ],
    counting: "For at kunne tælle unikke besøgende uden cookies får hver hændelse en kode, der dannes af en tilfældig hemmelighed for dagen, dette websites navn, din IP-adresse og din browsers identifikationsstreng. Der trækkes en ny hemmelighed for hver dag, og den slettes {hours} timer efter, at dagen begyndte. Så længe den findes, giver samme adresse og browser samme kode samme dag; når den er slettet, kan ingen, heller ikke vi, finde ud af, hvem et besøg stammer fra, og den samme person får en helt anden kode dagen efter.",
    kept: [
        "Enkelte hændelser (én række pr. sidevisning eller handling, med den daglige kode): {raw}, derefter slettes de automatisk.",
        "Daglige totaler (antal pr. side, kilde, land osv., uden nogen besøgskode): {aggregate}, derefter slettes de automatisk.",
        "De daglige hemmeligheder: {hours} timer.",
    ],
    places: [
        "i databasefiler på den server, der kører vores Footfall-installation",
        "i en ClickHouse-database, som vi selv driver ved siden af vores Footfall-installation",
        "i en ClickHouse-klynge (flere databaseservere), som vi selv driver ved siden af vores Footfall-installation",
    ],
    stored: "Data opbevares {place}. De sendes hverken til Footfalls udviklere eller til andre.",
    basis: "Vi behandler disse oplysninger på grundlag af vores legitime interesse i at vide, hvordan vores website bliver brugt, og i at holde det kørende (databeskyttelsesforordningens artikel 6, stk. 1, litra f). Målingen er begrænset til statistik til vores eget brug, gemmer ingen identifikator på din enhed og følger dig ikke på tværs af websites.",
    rights: [
        "Du har ret til indsigt i de oplysninger, vi har om dig, til at få dem rettet eller slettet, til at få behandlingen begrænset eller gøre indsigelse mod den og til at klage til en databeskyttelsesmyndighed (i Danmark Datatilsynet: www.datatilsynet.dk).",
        "I {hours} timer efter et besøg kan vi finde dets hændelser ud fra den IP-adresse og den browser, besøget blev foretaget med: skriv til os på kontaktadressen ovenfor med begge dele, så viser vi dig hændelserne eller sletter dem. Derefter kan hændelserne ikke længere knyttes til nogen person, så vi kan ikke se, hvilke af dem der er dine; der er ingen oplysninger tilbage, som vi kan vise, rette eller slette (databeskyttelsesforordningens artikel 11).",
        "Du kan til enhver tid gøre indsigelse mod målingen ved at skrive til os eller helt undgå den ved at blokere sidens statistikscript i din browser.",
    ],
};

fn blocks(f: &Facts, lang: Lang) -> Vec<Block> {
    use Block::*;
    let w = match lang {
        Lang::En => &ENGLISH,
        Lang::Da => &DANISH,
    };
    let place = w.places[match f.storage {
        Storage::Embedded => 0,
        Storage::ClickHouse => 1,
        Storage::Cluster => 2,
    }];
    let who = f.controller.as_deref().unwrap_or(w.placeholder);
    // `{who}` last: the owner's own text is not read for placeholders.
    let fill = |t: &str| {
        t.replace("{site}", &f.site)
            .replace("{hours}", &SALT_HOURS.to_string())
            .replace("{raw}", &span(f.raw_retention_days, lang))
            .replace("{aggregate}", &span(f.aggregate_retention_days, lang))
            .replace("{place}", place)
            .replace("{who}", who)
    };
    let mut recorded: Vec<String> = w.recorded.iter().map(|t| fill(t)).collect();
    recorded.insert(4, w.location[usize::from(!f.location)].to_string());
    let list = |items: &[&str]| List(items.iter().map(|t| fill(t)).collect());
    let [
        h_why,
        h_recorded,
        h_never,
        h_counting,
        h_kept,
        h_stored,
        h_basis,
        h_rights,
    ] = w.headings.map(|h| Heading(h.to_string()));
    vec![
        Title(fill(w.title)),
        Para(fill(w.responsible)),
        h_why,
        Para(fill(w.why)),
        h_recorded,
        List(recorded),
        h_never,
        list(&w.never),
        h_counting,
        Para(fill(w.counting)),
        h_kept,
        list(&w.kept),
        h_stored,
        Para(fill(w.stored)),
        h_basis,
        Para(fill(w.basis)),
        h_rights,
        Para(fill(w.rights[0])),
        Para(fill(w.rights[1])),
        Para(fill(w.rights[2])),
    ]
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Text for Markdown: characters that would start markup are escaped.
fn escape_md(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '\\' | '*' | '_' | '[' | ']' | '<' | '>' | '`' | '#') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The notice for `facts` in `lang`, written as `format`.
pub fn notice(facts: &Facts, lang: Lang, format: Format) -> String {
    let mut out = String::new();
    for block in blocks(facts, lang) {
        match (format, block) {
            (Format::Md, Block::Title(t)) => {
                let _ = writeln!(out, "# {}\n", escape_md(&t));
            }
            (Format::Md, Block::Heading(t)) => {
                let _ = writeln!(out, "## {}\n", escape_md(&t));
            }
            (Format::Md, Block::Para(t)) => {
                let _ = writeln!(out, "{}\n", escape_md(&t));
            }
            (Format::Md, Block::List(items)) => {
                for item in items {
                    let _ = writeln!(out, "- {}", escape_md(&item));
                }
                out.push('\n');
            }
            (Format::Html, Block::Title(t)) => {
                let _ = writeln!(out, "<h1>{}</h1>", escape_html(&t));
            }
            (Format::Html, Block::Heading(t)) => {
                let _ = writeln!(out, "<h2>{}</h2>", escape_html(&t));
            }
            (Format::Html, Block::Para(t)) => {
                let _ = writeln!(out, "<p>{}</p>", escape_html(&t));
            }
            (Format::Html, Block::List(items)) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "  <li>{}</li>", escape_html(&item));
                }
                out.push_str("</ul>\n");
            }
        }
    }
    out.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            site: "example.dk".into(),
            controller: Some("Eksempel ApS, Vej 1, 8000 Aarhus C, privacy@example.dk".into()),
            raw_retention_days: 30,
            aggregate_retention_days: 1825,
            location: true,
            storage: Storage::Embedded,
        }
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(30, Lang::En), "30 days");
        assert_eq!(span(1, Lang::En), "1 day");
        assert_eq!(span(1825, Lang::En), "5 years (1825 days)");
        assert_eq!(span(365, Lang::Da), "1 år (365 dage)");
        assert_eq!(span(400, Lang::Da), "400 dage");
    }

    #[test]
    fn markup_in_the_controller_stays_text() {
        let mut f = facts();
        f.controller = Some("<script>x</script> *Shop*".into());
        let html = notice(&f, Lang::En, Format::Html);
        assert!(
            html.contains("&lt;script&gt;x&lt;/script&gt; *Shop*"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        let md = notice(&f, Lang::En, Format::Md);
        assert!(md.contains("\\<script\\>x\\</script\\> \\*Shop\\*"), "{md}");
    }

    #[test]
    fn both_languages_have_every_section() {
        for lang in [Lang::En, Lang::Da] {
            let html = notice(&facts(), lang, Format::Html);
            assert_eq!(html.matches("<h2>").count(), 8, "{html}");
            assert_eq!(html.matches("<ul>").count(), 3, "{html}");
            assert!(html.starts_with("<h1>"));
        }
    }
}
