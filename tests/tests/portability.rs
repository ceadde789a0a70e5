//! The schema and every statement the ClickHouse store sends must also run on the current
//! ClickHouse engine (chDB), not only on the 18.16 server the other tests use.

use footfall::store::clickhouse_store::ClickHouseStore;

#[test]
fn schema_and_statements_run_on_current_clickhouse() {
    let python = std::env::var("FOOTFALL_TEST_CHDB_PYTHON")
        .expect("FOOTFALL_TEST_CHDB_PYTHON is not set: run the tests with scripts/test.sh, which installs chdb-core-lite");
    let store = ClickHouseStore::new(&footfall::config::ClickHouseConfig {
        url: "http://127.0.0.1:1".into(),
        user: "default".into(),
        password: String::new(),
        database: "footfall_portability".into(),
    });
    let statements = store.sample_statements();
    assert!(statements.len() >= 8);
    let spec = serde_json::json!({ "database": "footfall_portability", "statements": statements });
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), spec.to_string()).unwrap();
    let out = std::process::Command::new(python)
        .arg(footfall_tests::workspace_root().join("scripts/chdb_check.py"))
        .arg(file.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.matches("ok: ").count(),
        statements.len() + 4,
        "{stdout}"
    );
}
