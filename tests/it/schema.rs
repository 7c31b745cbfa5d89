//! The JSON Schema of pack files (`checks/schema.json`, for editor completion)
//! is generated from the config types; this test keeps the committed copy in
//! sync. Regenerate with `cargo run -q -- schema > checks/schema.json`.

use std::path::Path;

#[test]
fn committed_schema_matches_the_config_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("checks/schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("checks/schema.json exists"))
            .expect("valid JSON");
    let generated = healthprobe::config::pack_schema();
    assert!(
        committed == generated,
        "checks/schema.json is stale: run `cargo run -q -- schema > checks/schema.json`"
    );
}

#[test]
fn schema_describes_every_kind_and_rejects_unknown_fields() {
    let schema = healthprobe::config::pack_schema();
    let text = schema.to_string();
    for kind in healthprobe::checks::KindName::ALL {
        assert!(
            text.contains(&format!("\"{}\"", kind.as_str())),
            "schema mentions kind {}",
            kind.as_str()
        );
    }
    assert_eq!(
        schema["additionalProperties"],
        serde_json::Value::Bool(false)
    );
}
