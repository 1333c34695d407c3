use std::path::PathBuf;

/// `docs/openapi.json` is generated from the code; this fails when it is
/// stale. Regenerate with `UPDATE_OPENAPI=1 cargo test -p cairn-server openapi`.
#[test]
fn committed_openapi_document_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let current = cairn_server::openapi_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &current).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == current,
        "docs/openapi.json is stale: run UPDATE_OPENAPI=1 cargo test -p cairn-server openapi"
    );
    let doc: serde_json::Value = serde_json::from_str(&current).unwrap();
    for path in [
        "/v1/entries/{key}",
        "/v1/apps/{app}/envs/{env}/config",
        "/v1/changes",
        "/v1/schemas",
        "/v1/audit",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}
