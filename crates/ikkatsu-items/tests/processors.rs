//! Script and field-mapping processors.

use std::collections::BTreeMap;

use ikkatsu_core::{ErrorKind, ItemProcessor, Record};
use ikkatsu_items::mapping::{FieldMappingConfig, FieldMappingItemProcessor};
use ikkatsu_items::script::{ScriptItemProcessor, ScriptProcessorConfig};
use serde_json::{Value, json};

fn record(value: Value) -> Record {
    match value {
        Value::Object(map) => map.into(),
        other => panic!("not an object: {other}"),
    }
}

#[tokio::test]
async fn script_maps_records_keeping_field_order() {
    let processor = ScriptItemProcessor::new(ScriptProcessorConfig::inline(
        "record.name = record.name.to_upper();\n\
         record.total = record.price * record.qty;\n\
         record.region = params.region;\n\
         record",
    ))
    .unwrap()
    .with_parameters(BTreeMap::from([("region".to_owned(), "kansai".to_owned())]));
    let out = processor
        .process(record(json!({"qty": 3, "name": "tea", "price": 2.5})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::from(out.clone()),
        json!({"qty": 3, "name": "TEA", "price": 2.5, "region": "kansai", "total": 7.5})
    );
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        ["qty", "name", "price", "region", "total"]
    );
}

#[tokio::test]
async fn script_filters_with_unit() {
    let processor = ScriptItemProcessor::new(ScriptProcessorConfig::inline(
        "if record.age.parse_int() < 18 { return; }\nrecord",
    ))
    .unwrap();
    assert!(
        processor
            .process(record(json!({"age": "12"})))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        processor
            .process(record(json!({"age": "40"})))
            .await
            .unwrap(),
        Some(record(json!({"age": "40"})))
    );
}

#[tokio::test]
async fn script_errors_name_the_script_line_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("transform.rhai");
    std::fs::write(
        &path,
        "let x = 1;\nlet y = record.missing_field + 1;\nrecord",
    )
    .unwrap();
    let processor = ScriptItemProcessor::new(ScriptProcessorConfig::file(&path)).unwrap();
    let err = processor
        .process(record(json!({"a": 1})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Component);
    let expected = format!("script `{}` at line 2, position ", path.display());
    assert!(err.message().starts_with(&expected), "{err}");
    assert!(err.message().contains("record #1"), "{err}");

    let processor =
        ScriptItemProcessor::new(ScriptProcessorConfig::inline("record.x = 1;\n42")).unwrap();
    let err = processor.process(record(json!({}))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Component);
    assert!(
        err.message().contains("returned a value of type `i64`"),
        "{err}"
    );

    let err = ScriptItemProcessor::new(ScriptProcessorConfig::inline("let = ;"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.message()
            .starts_with("inline script: syntax error at line 1, position"),
        "{err}"
    );

    let both = ScriptProcessorConfig {
        script: Some("record".into()),
        file: Some(path.clone()),
        max_operations: None,
    };
    assert_eq!(
        ScriptItemProcessor::new(both).err().unwrap().kind(),
        ErrorKind::Config
    );
    let neither: ScriptProcessorConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(
        ScriptItemProcessor::new(neither).err().unwrap().kind(),
        ErrorKind::Config
    );
}

#[tokio::test]
async fn endless_script_is_stopped_by_the_operation_limit() {
    let config: ScriptProcessorConfig =
        serde_json::from_value(json!({"script": "loop { }", "max-operations": 10000})).unwrap();
    let processor = ScriptItemProcessor::new(config).unwrap();
    let err = processor.process(record(json!({}))).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Component);
    assert!(err.message().contains("Too many operations"), "{err}");
    assert!(err.message().contains("max-operations"), "{err}");

    // The default limit also stops it.
    let processor =
        ScriptItemProcessor::new(ScriptProcessorConfig::inline("while true { }")).unwrap();
    let err = processor.process(record(json!({}))).await.unwrap_err();
    assert!(err.message().contains("Too many operations"), "{err}");
}

#[test]
fn script_processor_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ScriptItemProcessor>();
}

fn mapping(config: Value) -> FieldMappingItemProcessor {
    FieldMappingItemProcessor::new(serde_json::from_value::<FieldMappingConfig>(config).unwrap())
        .unwrap()
}

#[tokio::test]
async fn mapping_renames_defaults_and_transforms_in_order() {
    let processor = mapping(json!({
        "fields": {
            "id": "customer_id",
            "name": {"from": "full_name", "transform": "trim"},
            "country": {"default": "jp", "transform": "upper"},
            "email": {"from": "mail", "transform": "lower"}
        }
    }));
    let out = processor
        .process(record(json!({
            "mail": "A@Example.COM", "customer_id": "7", "full_name": "  Aiko  ", "extra": 1
        })))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::from(out.clone()),
        json!({"id": "7", "name": "Aiko", "country": "JP", "email": "a@example.com"})
    );
    assert_eq!(
        out.keys().collect::<Vec<_>>(),
        ["id", "name", "country", "email"]
    );
}

#[tokio::test]
async fn mapping_keeps_unmapped_fields_when_asked() {
    let processor = mapping(json!({
        "fields": {"key": "id"},
        "keep-unmapped": true
    }));
    let out = processor
        .process(record(json!({"a": 1, "id": 2, "b": 3})))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.keys().collect::<Vec<_>>(), ["key", "a", "b"]);
    assert_eq!(Value::from(out), json!({"key": 2, "a": 1, "b": 3}));
}

#[tokio::test]
async fn mapping_missing_field_is_a_parse_error_naming_field_and_record() {
    let processor = mapping(json!({"fields": {"id": "customer_id"}}));
    processor
        .process(record(json!({"customer_id": 1})))
        .await
        .unwrap();
    let err = processor
        .process(record(json!({"other": 1})))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(
        err.message(),
        "record #2: source field `customer_id` (for output field `id`) is missing and has no default; the record has: other"
    );
    assert!(
        serde_json::from_value::<FieldMappingConfig>(json!({"fields": {}, "keepUnmapped": true}))
            .is_err()
    );
    assert!(
        serde_json::from_value::<FieldMappingConfig>(
            json!({"fields": {"a": {"from": "b", "transform": "reverse"}}})
        )
        .is_err()
    );
}
