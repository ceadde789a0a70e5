//! The dashboard bench's two ways of loading ClickHouse make the same events.

use std::sync::Arc;

use footfall::store::clickhouse::ClickHouseStore;
use footfall::store::{EventRow, EventStore, EventWriter, Store};
use footfall_tests::volume::{clickhouse_events_sql, events};

/// Every stored event of site 3, sorted, with the batch each came in left out.
async fn stored(store: &ClickHouseStore) -> Vec<EventRow> {
    let mut rows = store.read_events(3, 0, u32::MAX, 100_000).await.unwrap();
    for r in &mut rows {
        r.batch_id = 0;
    }
    rows.sort_by(|a, b| {
        (a.timestamp, a.session_id, &a.pathname).cmp(&(b.timestamp, b.session_id, &b.pathname))
    });
    rows
}

#[tokio::test]
async fn the_sql_seed_makes_the_rows_of_the_api_seed() {
    let url = footfall_tests::clickhouse_url();
    let now = "2026-11-20T12:00:00Z".parse().unwrap();
    // Not a multiple of 4: the last visit is cut short, as in the bench's own sizes.
    let n = 4_002;
    let by_api = ClickHouseStore::new(&footfall_tests::fresh_database(&url, "volume_api").await);
    let ch = footfall_tests::fresh_database(&url, "volume_sql").await;
    let by_sql = ClickHouseStore::new(&ch);
    for store in [&by_api, &by_sql] {
        store.migrate().await.unwrap();
    }
    let rows: Arc<[EventRow]> = events(n, now)
        .map(|e| EventRow { site_id: 3, ..e })
        .collect();
    by_api.insert_events(rows).await.unwrap();
    footfall_tests::client(&ch)
        .query(&clickhouse_events_sql(3, n, now))
        .execute()
        .await
        .unwrap();
    let (a, b) = (stored(&by_api).await, stored(&by_sql).await);
    assert_eq!(a.len(), n);
    // Several visits, sources, pages and browsers, so a wrong hash or index shows.
    let distinct = |f: fn(&EventRow) -> String| {
        a.iter()
            .map(f)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    assert!(distinct(|e| e.referrer_source.clone()) == 12);
    assert!(distinct(|e| e.browser.clone()) == 40);
    assert!(distinct(|e| e.pathname.clone()) > 250);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y);
    }
}
