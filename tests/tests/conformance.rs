//! The store conformance suite: what every `Store` promises, written once, run on each store
//! (a fresh database per test).

use std::sync::Arc;

use chrono::NaiveDate;
use footfall::ingest::visitor::Salt;
use footfall::store::{EventRow, Store, StoreError};
use footfall_tests::{Backend, TestStore, all_stores};

all_stores!(
    migrations_apply_once,
    events_read_back_exactly,
    reads_filter_by_site_and_half_open_range,
    sites_are_listed_and_unique,
    sites_added_at_once_by_two_collectors_stay_apart,
    sites_renamed_to_one_domain_at_once_keep_one,
    salts_first_written_wins_and_old_ones_are_deleted,
    purge_drops_whole_days_before_the_cutoff,
    large_batches_and_large_purges,
    api_keys_are_stored_hashed_and_revocable,
    sites_change_domain_and_time_zone,
    records_are_replaced_and_deleted,
    a_stored_batch_is_found_by_its_id,
    what_one_collector_writes_another_reads_at_once,
    superseded_record_versions_are_deleted,
);

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

fn ts(d: u32, secs: u32) -> u32 {
    (day(d).and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp() as u32) + secs
}

fn event(site_id: u32, timestamp: u32, i: u64) -> EventRow {
    EventRow {
        site_id,
        timestamp,
        name: if i.is_multiple_of(3) {
            "Signup".into()
        } else {
            "pageview".into()
        },
        hostname: "example.com".into(),
        pathname: format!("/päth/{i}"),
        visitor_id: u64::MAX - i,
        session_id: (1 << 63) + i,
        referrer: "news.ycombinator.com/item".into(),
        referrer_source: "Hacker News".into(),
        channel: "Organic Social".into(),
        utm_medium: "email".into(),
        utm_source: "newsletter".into(),
        utm_campaign: "launch ✨".into(),
        utm_content: String::new(),
        utm_term: "a'b\"c\\d".into(),
        browser: "Firefox".into(),
        browser_version: "133".into(),
        os: "Mac".into(),
        os_version: "10.15".into(),
        device: "Desktop".into(),
        country_code: "SE".into(),
        region: "SE-E".into(),
        city: "Linköping".into(),
        screen_width: 65_535,
        props_keys: vec!["plan".into(), "tier".into()],
        props_values: vec!["pro".into(), i.to_string()],
        revenue_micros: -12_340_000,
        revenue_currency: "EUR".into(),
        interactive: (i % 2) as u8,
        engagement_ms: u32::MAX,
        scroll_depth: 255,
        entry_page: format!("/entry/{}", i % 7),
        country_name: "Sweden".into(),
        region_name: "Östergötland County".into(),
        batch_id: u64::MAX - 7 * i,
    }
}

async fn migrations_apply_once(b: Backend) {
    let t = TestStore::new(b, "conf_migrate").await;
    assert!(
        t.store.migrate().await.unwrap().is_empty(),
        "a second run applies nothing"
    );
    t.store.ping().await.unwrap();
}

async fn events_read_back_exactly(b: Backend) {
    let t = TestStore::new(b, "conf_roundtrip").await;
    let rows: Vec<EventRow> = (0..50)
        .map(|i| event(1, ts(20, i as u32 * 10), i))
        .collect();
    t.store.insert_events(rows.as_slice().into()).await.unwrap();
    t.store.insert_events(Vec::new().into()).await.unwrap();
    let back = t.store.read_events(1, 0, u32::MAX, 1000).await.unwrap();
    assert_eq!(back, rows);
}

async fn reads_filter_by_site_and_half_open_range(b: Backend) {
    let t = TestStore::new(b, "conf_range").await;
    let rows = vec![
        event(1, ts(20, 0), 1),
        event(1, ts(20, 100), 2),
        event(2, ts(20, 50), 3),
        event(1, ts(20, 200), 4),
    ];
    t.store.insert_events(rows.as_slice().into()).await.unwrap();
    let back = t
        .store
        .read_events(1, ts(20, 0), ts(20, 200), 1000)
        .await
        .unwrap();
    assert_eq!(back, vec![rows[0].clone(), rows[1].clone()]);
    assert_eq!(t.store.earliest_event(1).await.unwrap(), Some(ts(20, 0)));
    assert_eq!(t.store.earliest_event(2).await.unwrap(), Some(ts(20, 50)));
    assert_eq!(t.store.earliest_event(3).await.unwrap(), None);
    let limited = t.store.read_events(1, 0, u32::MAX, 2).await.unwrap();
    assert_eq!(limited.len(), 2);
    assert_eq!(
        t.store.read_events(2, 0, u32::MAX, 10).await.unwrap(),
        vec![rows[2].clone()]
    );
    assert!(
        t.store
            .read_events(3, 0, u32::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn sites_are_listed_and_unique(b: Backend) {
    let t = TestStore::new(b, "conf_sites").await;
    let a = t
        .store
        .meta()
        .add_site("a.example", "Europe/Copenhagen")
        .await
        .unwrap();
    let c = t
        .store
        .meta()
        .add_site("c.example", "America/New_York")
        .await
        .unwrap();
    assert_ne!(a.id, c.id);
    assert!(matches!(
        t.store.meta().add_site("a.example", "UTC").await,
        Err(StoreError::SiteExists(_))
    ));
    let sites = t.store.meta().sites().await.unwrap();
    assert_eq!(sites, vec![a, c]);
}

/// Waits up to 10 s for `store` to list exactly `want` (on a cluster, replication brings the
/// last rows to each node a moment later).
async fn sites_become(store: &Arc<dyn Store>, want: &[footfall::store::Site]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = store.meta().sites().await.unwrap();
        if now == want {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{now:?} != {want:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn sites_added_at_once_by_two_collectors_stay_apart(b: Backend) {
    let t = TestStore::new(b, "conf_sites_at_once").await;
    let other = t.another_collector();
    let third = t.another_collector();
    let mut added = Vec::new();
    for round in 0..4 {
        let names = ["a", "b", "c"].map(|p| format!("{p}{round}.example"));
        let (x, y, z) = tokio::join!(
            t.store.meta().add_site(&names[0], "UTC"),
            other.meta().add_site(&names[1], "Europe/Paris"),
            third.meta().add_site(&names[2], "Asia/Tokyo"),
        );
        let new = [x, y, z].map(|r| r.unwrap_or_else(|e| panic!("round {round}: {e}")));
        for (i, site) in new.iter().enumerate() {
            assert_eq!(site.domain, names[i]);
            assert!(
                new.iter().filter(|s| s.id == site.id).count() == 1,
                "round {round}: one id for two sites: {new:?}"
            );
        }
        added.extend(new);
    }
    // Every collector lists every site, each under the id it was given (on a cluster, once
    // replication has brought the last rows to each node).
    added.sort_by_key(|s| s.id);
    for store in [&t.store, &other, &third] {
        sites_become(store, &added).await;
    }
    // The same domain added at once by both is one site.
    let (x, y) = tokio::join!(
        t.store.meta().add_site("same.example", "UTC"),
        other.meta().add_site("same.example", "UTC"),
    );
    let ids: Vec<u32> = [x, y]
        .into_iter()
        .filter_map(|r| match r {
            Ok(site) => Some(site.id),
            Err(StoreError::SiteExists(_)) => None,
            Err(e) => panic!("{e}"),
        })
        .collect();
    assert!(
        !ids.is_empty() && ids.iter().all(|id| *id == ids[0]),
        "{ids:?}"
    );
    let same: Vec<_> = t
        .store
        .meta()
        .sites()
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.domain == "same.example")
        .collect();
    assert_eq!(same.len(), 1);
    assert_eq!(same[0].id, ids[0]);
}

async fn sites_renamed_to_one_domain_at_once_keep_one(b: Backend) {
    let t = TestStore::new(b, "conf_sites_renamed_at_once").await;
    let other = t.another_collector();
    let one = t.store.meta().add_site("one.example", "UTC").await.unwrap();
    let two = t
        .store
        .meta()
        .add_site("two.example", "Asia/Tokyo")
        .await
        .unwrap();
    let before = vec![one.clone(), two.clone()];
    // Both stores must know both sites before the renames start.
    sites_become(&other, &before).await;
    for round in 0..3 {
        let domain = format!("taken{round}.example");
        let sites = t.store.meta().sites().await.unwrap();
        let renamed = [0, 1].map(|i| footfall::store::Site {
            domain: domain.clone(),
            ..sites[i].clone()
        });
        let (x, y) = tokio::join!(
            t.store.meta().update_site(&renamed[0]),
            other.meta().update_site(&renamed[1]),
        );
        let won: Vec<usize> = [x, y]
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Ok(true) => Some(i),
                Err(StoreError::SiteExists(d)) => {
                    assert_eq!(d, domain);
                    None
                }
                other => panic!("round {round}: {other:?}"),
            })
            .collect();
        assert_eq!(won.len(), 1, "round {round}: both renames were accepted");
        // The winner has the domain; the loser keeps its old domain and time zone.
        let mut want = sites.clone();
        want[won[0]].domain = domain.clone();
        for store in [&t.store, &other] {
            sites_become(store, &want).await;
        }
    }
}

async fn salts_first_written_wins_and_old_ones_are_deleted(b: Backend) {
    let t = TestStore::new(b, "conf_salts").await;
    let (s1, s2, s3) = (Salt([1; 32]), Salt([2; 32]), Salt([3; 32]));
    t.store.meta().put_salt(day(20), &s1).await.unwrap();
    t.store.meta().put_salt(day(20), &s2).await.unwrap();
    t.store.meta().put_salt(day(21), &s3).await.unwrap();
    assert_eq!(
        t.store.meta().salts().await.unwrap(),
        vec![(day(20), s1), (day(21), s3.clone())]
    );
    t.store.meta().delete_salts_before(day(21)).await.unwrap();
    assert_eq!(t.store.meta().salts().await.unwrap(), vec![(day(21), s3)]);
    let found = t.files_containing(&[1; 32]);
    assert!(found.is_empty(), "deleted salt bytes on disk: {found:?}");
}

async fn purge_drops_whole_days_before_the_cutoff(b: Backend) {
    let t = TestStore::new(b, "conf_purge").await;
    let rows = vec![
        event(1, ts(18, 10), 1),
        event(1, ts(18, 86_399), 2),
        event(2, ts(19, 0), 3),
        event(1, ts(20, 0), 4),
    ];
    t.store.insert_events(rows.as_slice().into()).await.unwrap();
    assert_eq!(t.store.purge_events_before(day(18)).await.unwrap(), 0);
    assert_eq!(t.store.purge_events_before(day(20)).await.unwrap(), 2);
    assert_eq!(
        t.store.read_events(1, 0, u32::MAX, 10).await.unwrap(),
        vec![rows[3].clone()]
    );
    assert!(
        t.store
            .read_events(2, 0, u32::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(t.store.purge_events_before(day(20)).await.unwrap(), 0);
}

async fn large_batches_and_large_purges(b: Backend) {
    let t = TestStore::new(b, "conf_large").await;
    let rows: Vec<EventRow> = (0..25_000u64)
        .map(|i| event(1, ts(18, (i % 86_400) as u32), i))
        .collect();
    t.store.insert_events(rows.as_slice().into()).await.unwrap();
    t.store
        .insert_events(vec![event(1, ts(19, 5), 99)].into())
        .await
        .unwrap();
    assert_eq!(
        t.store
            .read_events(1, 0, u32::MAX, 100_000)
            .await
            .unwrap()
            .len(),
        25_001
    );
    assert_eq!(t.store.purge_events_before(day(19)).await.unwrap(), 1);
    assert_eq!(
        t.store
            .read_events(1, 0, u32::MAX, 100_000)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn api_keys_are_stored_hashed_and_revocable(b: Backend) {
    let t = TestStore::new(b, "conf_api_keys").await;
    let k1 = footfall::apikey::generate(1, 1_000);
    let k2 = footfall::apikey::generate(2, 2_000);
    t.store.meta().add_api_key(&k1.record).await.unwrap();
    t.store.meta().add_api_key(&k2.record).await.unwrap();
    assert_eq!(
        t.store.meta().api_keys().await.unwrap(),
        vec![k1.record.clone(), k2.record.clone()]
    );
    assert_eq!(
        footfall::apikey::verify(t.store.as_ref(), &k1.secret)
            .await
            .unwrap(),
        Some(k1.record.clone())
    );
    assert!(t.store.meta().revoke_api_key(&k1.record.id).await.unwrap());
    assert!(!t.store.meta().revoke_api_key("00000000").await.unwrap());
    let keys = t.store.meta().api_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].revoked, 1);
    assert_eq!(keys[1].revoked, 0);
    assert_eq!(
        footfall::apikey::verify(t.store.as_ref(), &k1.secret)
            .await
            .unwrap(),
        None
    );
    assert!(
        footfall::apikey::verify(t.store.as_ref(), &k2.secret)
            .await
            .unwrap()
            .is_some()
    );
    for (table, text) in t.dump_tables().await {
        assert!(
            !text.contains(&k2.secret[3..]),
            "the key itself is in {table}"
        );
    }
}

async fn sites_change_domain_and_time_zone(b: Backend) {
    let t = TestStore::new(b, "conf_site_update").await;
    let a = t.store.meta().add_site("a.example", "UTC").await.unwrap();
    let c = t.store.meta().add_site("c.example", "UTC").await.unwrap();
    let renamed = footfall::store::Site {
        id: a.id,
        domain: "b.example".into(),
        timezone: "Asia/Tokyo".into(),
    };
    assert!(t.store.meta().update_site(&renamed).await.unwrap());
    assert_eq!(
        t.store.meta().sites().await.unwrap(),
        vec![renamed.clone(), c.clone()]
    );
    // Twice in a row: the latest wins.
    let again = footfall::store::Site {
        timezone: "Europe/Paris".into(),
        ..renamed.clone()
    };
    assert!(t.store.meta().update_site(&again).await.unwrap());
    assert_eq!(t.store.meta().sites().await.unwrap()[0], again);
    assert!(matches!(
        t.store
            .meta()
            .update_site(&footfall::store::Site {
                domain: "c.example".into(),
                ..again.clone()
            })
            .await,
        Err(StoreError::SiteExists(_))
    ));
    let missing = footfall::store::Site {
        id: 99,
        ..again.clone()
    };
    assert!(!t.store.meta().update_site(&missing).await.unwrap());
    // The old domain is free again; a new site gets a new id.
    let d = t.store.meta().add_site("a.example", "UTC").await.unwrap();
    assert!(d.id != a.id && d.id != c.id);
}

async fn records_are_replaced_and_deleted(b: Backend) {
    let t = TestStore::new(b, "conf_records").await;
    let s = t.store.as_ref();
    assert_eq!(s.meta().record("user", "a@x.org").await.unwrap(), None);
    s.meta()
        .put_record("user", "b@x.org", r#"{"v":1}"#)
        .await
        .unwrap();
    s.meta()
        .put_record("user", "a@x.org", r#"{"v":2}"#)
        .await
        .unwrap();
    s.meta()
        .put_record("session", "a@x.org", "other kind")
        .await
        .unwrap();
    s.meta()
        .put_record("user", "a@x.org", r#"{"v":3}"#)
        .await
        .unwrap();
    assert_eq!(
        s.meta().record("user", "a@x.org").await.unwrap().as_deref(),
        Some(r#"{"v":3}"#)
    );
    assert_eq!(
        s.meta().records("user").await.unwrap(),
        vec![
            ("a@x.org".to_string(), r#"{"v":3}"#.to_string()),
            ("b@x.org".to_string(), r#"{"v":1}"#.to_string()),
        ]
    );
    assert!(s.meta().delete_record("user", "a@x.org").await.unwrap());
    assert!(!s.meta().delete_record("user", "a@x.org").await.unwrap());
    assert_eq!(s.meta().record("user", "a@x.org").await.unwrap(), None);
    assert_eq!(s.meta().records("user").await.unwrap().len(), 1);
    assert_eq!(
        s.meta()
            .record("session", "a@x.org")
            .await
            .unwrap()
            .as_deref(),
        Some("other kind")
    );
    // Written again after a deletion, it is back.
    s.meta().put_record("user", "a@x.org", "{}").await.unwrap();
    assert_eq!(
        s.meta().record("user", "a@x.org").await.unwrap().as_deref(),
        Some("{}")
    );
    // Quotes and other bytes survive.
    let odd = "it's \"quoted\" \\ and ünïcode";
    s.meta().put_record("share", "0'; DROP", odd).await.unwrap();
    assert_eq!(
        s.meta()
            .record("share", "0'; DROP")
            .await
            .unwrap()
            .as_deref(),
        Some(odd)
    );
}

async fn a_stored_batch_is_found_by_its_id(b: Backend) {
    let t = TestStore::new(b, "conf_batch_ids").await;
    let batch: Vec<EventRow> = (0..5).map(|i| event(1, ts(1, 60 + i as u32), i)).collect();
    let batch: Vec<EventRow> = batch
        .into_iter()
        .map(|e| EventRow {
            batch_id: u64::MAX - 1,
            ..e
        })
        .collect();
    let probe = batch[0].clone();
    assert!(!t.store.batch_written(&batch).await.unwrap());
    t.store
        .insert_events(batch.as_slice().into())
        .await
        .unwrap();
    assert!(t.store.batch_written(&batch).await.unwrap());
    for other in [
        EventRow {
            batch_id: 7,
            ..probe.clone()
        },
        EventRow {
            site_id: 2,
            ..probe.clone()
        },
        EventRow {
            timestamp: probe.timestamp + 1000,
            ..probe.clone()
        },
    ] {
        assert!(!t.store.batch_written(&[other]).await.unwrap());
    }
}

/// Metadata written through one collector is read through another as soon as the write has
/// returned (on a cluster the other collector uses another node): a site added through one
/// and given an API key through the other at once, a record, a salt; 20 times in a row.
async fn what_one_collector_writes_another_reads_at_once(b: Backend) {
    let t = TestStore::new(b, "conf_read_your_peer").await;
    let other = t.another_collector();
    for i in 0..20u32 {
        let domain = format!("peer{i}.example");
        let site = t.store.meta().add_site(&domain, "UTC").await.unwrap();
        let seen = other.meta().sites().await.unwrap();
        assert!(
            seen.iter().any(|s| s.domain == domain && s.id == site.id),
            "round {i}: {domain} added through one collector is not listed by the other"
        );
        let key = footfall::store::ApiKey {
            id: format!("key{i}"),
            site_id: site.id,
            hash: format!("{i:064x}"),
            created_at: 1_700_000_000,
            revoked: 0,
        };
        other.meta().add_api_key(&key).await.unwrap();
        assert!(
            t.store
                .meta()
                .api_keys()
                .await
                .unwrap()
                .iter()
                .any(|k| k.id == key.id),
            "round {i}: an API key added through the other collector is not read back"
        );
        t.store
            .meta()
            .put_record("peer-test", &format!("r{i}"), "body")
            .await
            .unwrap();
        assert_eq!(
            other
                .meta()
                .record("peer-test", &format!("r{i}"))
                .await
                .unwrap(),
            Some("body".to_string()),
            "round {i}: a record is not read through the other collector"
        );
    }
    let salt_day = day(20);
    t.store
        .meta()
        .put_salt(salt_day, &Salt([7; 32]))
        .await
        .unwrap();
    assert!(
        other
            .meta()
            .salts()
            .await
            .unwrap()
            .iter()
            .any(|(d, s)| *d == salt_day && s.0 == [7; 32])
    );
}

/// Deleting salts on SQLite empties the WAL even while another connection holds a read
/// snapshot through the first checkpoint's busy timeout: the checkpoint is tried again until
/// it completes, and no byte of the deleted salt is left in any file.
#[tokio::test]
async fn sqlite_deleted_salts_leave_every_file_while_a_reader_holds_the_wal() {
    let t = TestStore::new(Backend::Sqlite, "salts_reader").await;
    let old = Salt::random();
    t.store.meta().put_salt(day(1), &old).await.unwrap();
    t.store
        .meta()
        .put_salt(day(3), &Salt::random())
        .await
        .unwrap();
    let db = t.config.data_dir.join(footfall::store::sqlite::DB_FILE);
    let (held, holding) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN").unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM salts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        held.send(()).unwrap();
        // Longer than the store's busy timeout (5 s).
        std::thread::sleep(std::time::Duration::from_secs(7));
        conn.execute_batch("COMMIT").unwrap();
    });
    holding.recv().unwrap();
    t.store.meta().delete_salts_before(day(2)).await.unwrap();
    reader.join().unwrap();
    assert_eq!(t.store.meta().salts().await.unwrap().len(), 1);
    let found = t.files_containing(&old.0);
    assert!(found.is_empty(), "deleted salt bytes remain in {found:?}");
}

/// The body of every stored record row, superseded versions included (on ClickHouse, once
/// no mutation is left to run).
async fn stored_record_bodies(t: &TestStore) -> Vec<String> {
    match &t.config.clickhouse {
        None => {
            let db = rusqlite::Connection::open(t.config.data_dir.join("footfall.db")).unwrap();
            let mut stmt = db.prepare("SELECT body FROM records").unwrap();
            stmt.query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        }
        Some(ch) => {
            let c = footfall_tests::client(ch);
            let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let pending: u64 = c
                    .query("SELECT count() FROM system.mutations WHERE database = ? AND table = 'records' AND is_done = 0")
                    .bind(ch.database.as_str())
                    .fetch_one()
                    .await
                    .unwrap();
                if pending == 0 || std::time::Instant::now() > until {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            c.query("SELECT body FROM records")
                .fetch_all::<String>()
                .await
                .unwrap()
        }
    }
}

/// Old password hashes and ended sessions do not stay in the store: the versions a later
/// write or a deletion superseded are deleted by maintenance's compaction, and what is read
/// does not change.
async fn superseded_record_versions_are_deleted(b: Backend) {
    let t = TestStore::new(b, "conf_compact").await;
    let s = t.store.as_ref();
    // Versions written two hours ago (on ClickHouse, rows with those versions: a compaction
    // leaves the last minute's writes alone, in case one races its scan).
    let old = [
        ("user", "a@x.org", "old-hash-1"),
        ("user", "a@x.org", "old-hash-2"),
        ("session", "s1", "ended-session"),
    ];
    match &t.config.clickhouse {
        None => {
            for (kind, id, body) in old {
                s.meta().put_record(kind, id, body).await.unwrap();
            }
        }
        Some(ch) => {
            let two_hours_ago = (chrono::Utc::now().timestamp_micros() - 7_200_000_000) as u64;
            for (i, (kind, id, body)) in old.into_iter().enumerate() {
                footfall_tests::client(ch)
                    .query("INSERT INTO records (kind, id, body, deleted, version) VALUES (?, ?, ?, 0, ?)")
                    .bind(kind)
                    .bind(id)
                    .bind(body)
                    .bind(two_hours_ago + i as u64)
                    .execute()
                    .await
                    .unwrap();
            }
        }
    }
    s.meta()
        .put_record("user", "a@x.org", "current-hash")
        .await
        .unwrap();
    assert!(s.meta().delete_record("session", "s1").await.unwrap());
    s.meta()
        .put_record("user", "b@x.org", "only-hash")
        .await
        .unwrap();
    let gone = s.meta().compact_records().await.unwrap();
    if matches!(b, Backend::ClickHouse | Backend::Cluster) {
        assert_eq!(
            gone, 3,
            "two old versions of a@x.org and the ended session's row"
        );
    }
    assert_eq!(
        s.meta().record("user", "a@x.org").await.unwrap().as_deref(),
        Some("current-hash")
    );
    assert_eq!(s.meta().record("session", "s1").await.unwrap(), None);
    assert_eq!(s.meta().records("user").await.unwrap().len(), 2);
    let bodies = stored_record_bodies(&t).await;
    for old in ["old-hash-1", "old-hash-2", "ended-session"] {
        assert!(
            !bodies.iter().any(|b| b == old),
            "{old} is still stored: {bodies:?}"
        );
    }
    assert!(bodies.iter().any(|b| b == "current-hash"));
    // Nothing left to do the second time.
    if matches!(b, Backend::ClickHouse | Backend::Cluster) {
        assert_eq!(s.meta().compact_records().await.unwrap(), 0);
    }
}
