//! What the fuzz targets share: a pipeline set up as a running collector's is, so a parsed
//! input can be carried through every step.

use std::net::IpAddr;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate};
use footfall::ingest::body::EventInput;
use footfall::ingest::pipeline::{Outcome, Pipeline, Request};
use footfall::ingest::visitor::{Salt, Salts};
use footfall::store::Site;

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let p = Pipeline::new(None);
        p.set_sites(vec![
            Site {
                id: 1,
                domain: "example.com".into(),
                timezone: "UTC".into(),
            },
            Site {
                id: 2,
                domain: "shop.example".into(),
                timezone: "Europe/Copenhagen".into(),
            },
        ]);
        // The day of the events `process` sends (2025-11-25) and the one before.
        p.set_salts(Salts {
            days: vec![
                (NaiveDate::from_ymd_opt(2025, 11, 25).unwrap(), Salt([1; 32])),
                (NaiveDate::from_ymd_opt(2025, 11, 24).unwrap(), Salt([2; 32])),
            ],
        });
        p
    })
}

/// Runs a parsed event through the pipeline and checks what must hold of any accepted row.
pub fn process(input: EventInput, user_agent: &str) {
    let request = Request {
        input,
        client_ip: IpAddr::from([203, 0, 113, 9]),
        user_agent,
        client_hints: Default::default(),
        received_at: DateTime::from_timestamp(1_764_072_000, 0).unwrap(),
    };
    if let Ok(Outcome::Accepted(rows)) = pipeline().process(&request) {
        for row in rows {
            assert!(row.site_id == 1 || row.site_id == 2);
            assert!(row.pathname.starts_with('/'), "{:?}", row.pathname);
            assert_eq!(row.props_keys.len(), row.props_values.len());
            assert!(!row.hostname.contains(char::is_uppercase));
        }
    }
}
